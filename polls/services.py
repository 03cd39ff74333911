"""Polls: the write functions (`do_*`) every caller goes through, and the reads.

Rights are never decided here: each statement asks user_may() in SQL, or, for the
admin's deletion, the actor's own "user" row. The moderator role and grant revocation
span polls and are the admin's alone, so their callers decide who may use them. The
write functions raise the project's errors (feedapp.errors: NotAuthenticated, Forbidden,
and polls.errors.PollNotFound), which every transport renders its own way.
The API, the admin and the other apps call these same functions, so a poll is always
created, deleted and shared the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

import psycopg

from accounts.rows import UserRow
from db.pool import connection, run_read, run_transaction
from db.sql import execute, fetch_all, fetch_one, fetch_value, queries
from feedapp.errors import Forbidden, NotAuthenticated
from polls.errors import PollNotFound
from polls.rows import (
    GrantableRole,
    IdRow,
    Permission,
    PollAccess,
    PollPerms,
    PollRow,
    PollSummaryRow,
    Role,
    StaffDeletion,
    UserGrantRow,
    UserIdRow,
)
from polls.signals import send_poll_deleted

log = logging.getLogger(__name__)
Q = queries("polls")

# What a poll's sharing setting grants to everyone (user_id NULL) at creation.
_EVERYONE_ROLE: dict[PollPerms, Role | None] = {
    "public_view": "viewer",
    "public_vote": "voter",
    "private": None,
}


def _user_id(user: UserRow | None) -> int | None:
    return user.id if user is not None else None


def _signed_in(actor: UserRow | None) -> UserRow:
    if actor is None:
        raise NotAuthenticated()
    return actor


async def _check_access(
    conn: psycopg.AsyncConnection, poll_id: int, actor: UserRow, permission: Permission
) -> None:
    """PollNotFound unless the actor may view the poll; Forbidden unless `permission` is theirs.

    The poll stays locked against deletion until the transaction ends.
    """
    access = await fetch_one(
        conn,
        Q["poll_access"],
        {"poll_id": poll_id, "user_id": actor.id, "permission": permission},
        PollAccess,
    )
    if access is None or not access.may_view:
        raise PollNotFound()
    if not access.may_act:
        raise Forbidden()


async def do_create_poll(
    creator: UserRow,
    question: str,
    options: Sequence[str],
    poll_perms: PollPerms = "public_vote",
    expires_at: datetime | None = None,
) -> PollRow:
    """Create a poll with its options, zero counts and grants in one transaction."""
    # Input is validated by the caller (schemas.CreatePoll); the table's checks back that up.
    async with connection() as conn:
        poll_id = await fetch_value(
            conn,
            Q["insert_poll"],
            {
                "question": question,
                "creator_id": creator.id,
                "poll_perms": poll_perms,
                "expires_at": expires_at,
            },
        )
        await execute(conn, Q["insert_options"], {"poll_id": poll_id, "options": list(options)})
        grants: list[tuple[Role, int | None]] = [("creator", creator.id)]
        everyone_role = _EVERYONE_ROLE[poll_perms]
        if everyone_role is not None:
            grants.append((everyone_role, None))
        for role, user_id in grants:
            await execute(
                conn,
                Q["insert_grant"],
                {
                    "role": role,
                    "user_id": user_id,
                    "poll_id": poll_id,
                    "granted_by": creator.id,
                    "expires_at": None,
                },
            )
        poll = await fetch_one(
            conn, Q["get_poll"], {"poll_id": poll_id, "user_id": creator.id}, PollRow
        )
    assert poll is not None, "the creator's grant makes the new poll visible to them"
    return poll


async def do_delete_poll(poll_id: int, actor: UserRow | None) -> None:
    """Delete a poll if `actor` holds poll:delete on it, then send poll_deleted.

    `actor` None is an anonymous caller: NotAuthenticated. Raises PollNotFound when
    the poll does not exist or is not visible to the actor, Forbidden when it is
    visible but not theirs to delete. The signal's receivers (polls.signals) run after
    the commit, once, and only when this call deleted the poll.
    """
    actor = _signed_in(actor)
    params = {"poll_id": poll_id, "user_id": actor.id}

    async def delete(conn: psycopg.AsyncConnection) -> None:
        # The common case is one statement; only a refusal needs to learn why.
        deleted = await fetch_value(conn, Q["delete_poll"], params)
        if deleted is None:
            await _check_access(conn, poll_id, actor, "poll:delete")
            # Allowed now though refused a moment ago: a grant landed in between.
            # The poll is locked by this transaction now, so the retry is decisive.
            deleted = await fetch_value(conn, Q["delete_poll"], params)
            if deleted is None:
                raise Forbidden()

    # The consumer takes a poll's row before its votes, as this deletion does; should
    # PostgreSQL still break a deadlock, the deletion runs again.
    await run_transaction(delete)
    # The transaction committed the deletion: only now may others react to it.
    await send_poll_deleted(poll_id)


async def do_delete_poll_as_staff(poll_id: int, staff: UserRow) -> None:
    """Delete any poll on behalf of an active staff member (the admin), then send poll_deleted.

    Staff moderate every poll without holding a grant on it: this is the one path that
    authorizes by the is_staff flag instead of user_may(), and it reads that flag from
    the database in the deleting statement. Forbidden when `staff` is not active
    staff, PollNotFound when the poll does not exist (also when it was just deleted by
    someone else, whose call sent the signal). The receivers run after the commit, as for
    do_delete_poll.
    """
    params = {"poll_id": poll_id, "staff_id": staff.id}
    outcome = await run_transaction(
        lambda conn: fetch_one(conn, Q["delete_poll_as_staff"], params, StaffDeletion)
    )
    assert outcome is not None, "the statement always returns one row"
    if not outcome.allowed:
        log.warning("user %d is not active staff: poll %d not deleted", staff.id, poll_id)
        raise Forbidden()
    if not outcome.deleted:
        raise PollNotFound()
    log.info("poll %d deleted by staff user %d", poll_id, staff.id)
    await send_poll_deleted(poll_id)


async def do_grant_roles(
    poll_id: int, actor: UserRow | None, grants: Sequence[tuple[GrantableRole, int]]
) -> list[int]:
    """Grant (role, user_id) pairs on a poll from now on; the user ids that were not granted.

    Not granted: unknown users and users already holding that role. Requires
    poll:assign_role (NotAuthenticated, Forbidden, PollNotFound otherwise).
    """
    actor = _signed_in(actor)
    async with connection() as conn:
        await _check_access(conn, poll_id, actor, "poll:assign_role")
        if not grants:
            return []
        refused = await fetch_all(
            conn,
            Q["grant_user_roles"],
            {
                "poll_id": poll_id,
                "granted_by": actor.id,
                "roles": [role for role, _ in grants],
                "user_ids": [user_id for _, user_id in grants],
            },
            UserIdRow,
        )
    return [row.user_id for row in refused]


async def do_grant_moderator(
    user_id: int, expires_at: datetime | None = None, granted_by: UserRow | None = None
) -> bool:
    """Make a user moderator of every poll until `expires_at` (None: no end).

    False when the user does not exist or already is a moderator over that period.
    The caller decides who may do this (the admin: staff only); there is no poll
    permission for it because it spans every poll.
    """
    async with connection() as conn:
        granted = await fetch_value(
            conn,
            Q["insert_grant"],
            {
                "role": "moderator",
                "user_id": user_id,
                "poll_id": None,
                "granted_by": _user_id(granted_by),
                "expires_at": expires_at,
            },
        )
    return granted is not None


async def do_revoke_moderator(user_id: int, revoked_by: UserRow | None = None) -> int:
    """End a user's global moderator role now; how many grants in force it ended.

    The grants stay as history with their period ended. As for do_grant_moderator,
    the caller decides who may do this (the admin: staff only).
    """
    async with connection() as conn:
        ended = await fetch_all(conn, Q["end_moderator_grants"], {"user_id": user_id}, IdRow)
    if ended:
        log.info(
            "moderator grants %s of user %d revoked by user %s",
            [row.id for row in ended],
            user_id,
            _user_id(revoked_by),
        )
    return len(ended)


async def do_revoke_grants(
    grant_ids: Sequence[int], revoked_by: UserRow | None = None
) -> list[int]:
    """End these grants now, whatever their role and scope; the ids of those it ended.

    Grants no longer (or not yet) in force are left as they are; rows are never
    deleted. The caller decides who may do this (the admin: staff only).
    """
    if not grant_ids:
        return []
    async with connection() as conn:
        ended = await fetch_all(conn, Q["end_grants"], {"grant_ids": list(grant_ids)}, IdRow)
    ids = sorted(row.id for row in ended)
    if ids:
        log.info("grants %s revoked by user %s", ids, _user_id(revoked_by))
    return ids


async def get_poll(poll_id: int, viewer: UserRow | None) -> PollRow | None:
    """The poll with the viewer's vote; None when it does not exist or is not viewable."""
    params = {"poll_id": poll_id, "user_id": _user_id(viewer)}
    return await run_read(lambda conn: fetch_one(conn, Q["get_poll"], params, PollRow))


async def get_feed_page(
    viewer: UserRow | None, limit: int, before: int | None = None
) -> list[PollSummaryRow]:
    """Up to `limit` polls the viewer may view, newest first, older than poll id `before`."""
    params = {"user_id": _user_id(viewer), "limit": limit, "before": before}
    return await run_read(lambda conn: fetch_all(conn, Q["feed_page"], params, PollSummaryRow))


async def list_user_grants(poll_id: int, actor: UserRow | None) -> list[UserGrantRow]:
    """The poll's active grants to named users; requires poll:assign_role."""
    actor = _signed_in(actor)
    async with connection() as conn:
        await _check_access(conn, poll_id, actor, "poll:assign_role")
        return await fetch_all(conn, Q["list_user_grants"], {"poll_id": poll_id}, UserGrantRow)
