"""Moderation's write paths: users report polls, moderators resolve the reports.

Every caller goes through these functions: the API files reports, the admin's review
queue dismisses them or bans a poll's creator. Deleting a reported poll is
polls.services' deletion (its reports go with it); banning is accounts.services'.
The staff functions authorize by the actor's own "user" row, read and locked in the
transaction that acts, as the admin's poll deletion does.

Who reported a poll is never returned to anyone but the admin: a poll's creator
cannot learn it, not even from the answer to their own report.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import psycopg
from django.conf import settings

from accounts import throttle
from accounts.rows import UserRow
from accounts.services import do_deactivate_user
from db.pool import connection
from db.sql import fetch_all, fetch_one, fetch_value, queries
from feedapp.errors import Forbidden, NotAuthenticated
from moderation.errors import AlreadyReported
from moderation.rows import Reason, ReportTarget, ResolvedReports
from polls.errors import PollNotFound
from polls.rows import IdRow

log = logging.getLogger(__name__)
Q = queries("moderation")

REPORTS_BY_USER = "reports:user"
TOO_MANY_REPORTS = "Too many reports; try again later"


@dataclass(frozen=True)
class FiledReport:
    report_id: int
    # Whether this report was the one that hid the poll from the public (auto-hide).
    hid_poll: bool


@dataclass(frozen=True)
class Resolved:
    """What a moderator's action resolved: open reports per poll id."""

    reports: dict[int, int] = field(default_factory=dict)
    # Polls shown to the public again (dismissal only).
    unhidden: list[int] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.reports.values())


@dataclass(frozen=True)
class Ban:
    # False when the creator was already banned (their reports are resolved all the same).
    banned: bool
    resolved: Resolved


def _report_rate() -> throttle.Rate:
    return throttle.Rate(settings.REPORTS_PER_HOUR, 3600.0)


async def do_report_poll(
    poll_id: int, reporter: UserRow | None, reason: Reason, note: str | None = None
) -> FiledReport:
    """File `reporter`'s report on a poll they may view.

    NotAuthenticated for an anonymous caller, TooManyRequests past REPORTS_PER_HOUR,
    PollNotFound when the poll does not exist or is not visible to the reporter,
    AlreadyReported while their earlier report on it is open. With
    REPORTS_AUTOHIDE_THRESHOLD set, the report that brings the poll's distinct
    reporters to the threshold hides the poll from the public.
    """
    if reporter is None:
        raise NotAuthenticated()
    verdict = await throttle.consume(REPORTS_BY_USER, str(reporter.id), _report_rate())
    if not verdict.allowed:
        log.warning("reports of user %d throttled", reporter.id)
        throttle.raise_if_denied(verdict, TOO_MANY_REPORTS)
    threshold = settings.REPORTS_AUTOHIDE_THRESHOLD
    async with connection() as conn:
        target = await fetch_one(
            conn,
            Q["lock_poll_for_report"],
            {"poll_id": poll_id, "user_id": reporter.id},
            ReportTarget,
        )
        if target is None or not target.may_view:
            raise PollNotFound()
        report_id = await fetch_value(
            conn,
            Q["insert_report"],
            {"poll_id": poll_id, "reporter_id": reporter.id, "reason": reason, "note": note},
        )
        if report_id is None:
            raise AlreadyReported()
        hid = threshold > 0 and (
            await fetch_value(
                conn, Q["hide_if_reported"], {"poll_id": poll_id, "threshold": threshold}
            )
            is not None
        )
    log.info("poll %d reported (%s) by user %d: report %d", poll_id, reason, reporter.id, report_id)
    if hid:
        log.warning("poll %d hidden from the public: %d users reported it", poll_id, threshold)
    return FiledReport(report_id, hid)


async def _require_active_staff(conn: psycopg.AsyncConnection, staff: UserRow) -> None:
    if await fetch_value(conn, Q["lock_active_staff"], {"staff_id": staff.id}) is None:
        log.warning("user %d is not active staff: moderation refused", staff.id)
        raise Forbidden()


def _per_poll(rows: Sequence[ResolvedReports]) -> dict[int, int]:
    return {row.poll_id: row.reports for row in rows}


async def do_dismiss_reports(poll_ids: Sequence[int], staff: UserRow) -> Resolved:
    """Dismiss the open reports of these polls and show hidden ones to the public again.

    Forbidden unless `staff` is active staff. Polls without open reports are left as
    they are, except that a hidden one is shown again.
    """
    params = {"poll_ids": list(poll_ids), "staff_id": staff.id}
    async with connection() as conn:
        await _require_active_staff(conn, staff)
        resolved = await fetch_all(conn, Q["dismiss_reports"], params, ResolvedReports)
        shown = await fetch_all(conn, Q["unhide_polls"], params, IdRow)
    outcome = Resolved(_per_poll(resolved), sorted(row.id for row in shown))
    if outcome.reports or outcome.unhidden:
        log.info(
            "reports dismissed by user %d: %s; shown again: %s",
            staff.id,
            outcome.reports,
            outcome.unhidden,
        )
    return outcome


async def do_ban_creator(creator_id: int, staff: UserRow) -> Ban:
    """Ban a user (accounts.services) and resolve the open reports on all their polls.

    Forbidden unless `staff` is active staff; who may be banned (not oneself, not a
    superuser unless one is) is the admin's rule (accounts.models.User.may_ban). The
    polls stay, hidden ones hidden. Calling it again resolves reports filed since.
    """
    async with connection() as conn:
        await _require_active_staff(conn, staff)
    banned = await do_deactivate_user(creator_id)
    async with connection() as conn:
        resolved = await fetch_all(
            conn,
            Q["resolve_creator_reports"],
            {"creator_id": creator_id, "staff_id": staff.id},
            ResolvedReports,
        )
    outcome = Ban(banned, Resolved(_per_poll(resolved)))
    log.info(
        "creator %d banned by user %d (was active: %s); reports resolved: %s",
        creator_id,
        staff.id,
        banned,
        outcome.resolved.reports,
    )
    return outcome
