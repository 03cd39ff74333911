"""Reporting polls through the API: every answer of POST /api/poll/{id}/report, and auto-hide."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import pytest
from django.conf import settings
from django.test import override_settings

from accounts import throttle
from accounts.rows import UserRow
from accounts.services import do_create_user
from db.pool import connection
from db.sql import fetch_all
from feedapp.errors import Forbidden
from moderation.services import REPORTS_BY_USER, do_dismiss_reports, do_report_poll
from polls.services import do_grant_moderator
from tests.accounts_client import new_identity
from tests.poll_helpers import feed_ids
from tests.polls import SamplePoll, grant, make_poll
from tests.users import client_for, make_user


@dataclass(frozen=True)
class StoredReport:
    poll_id: int
    reporter_id: int
    reason: str
    note: str | None
    created_at: datetime
    resolution: str | None
    resolved_by: int | None
    resolved_at: datetime | None


async def stored_reports(poll_id: int) -> list[StoredReport]:
    async with connection() as conn:
        return await fetch_all(
            conn,
            "SELECT poll_id, reporter_id, reason::text, note, created_at, resolution::text,"
            " resolved_by, resolved_at FROM poll_report WHERE poll_id = %s ORDER BY id",
            (poll_id,),
            StoredReport,
        )


async def report(user: UserRow | None, poll_id: int | str, body: object = None):
    return await client_for(user).post(
        f"/api/poll/{poll_id}/report",
        body if body is not None else {"reason": "spam"},
        content_type="application/json",
    )


@pytest.fixture
async def reporters() -> AsyncIterator[list[UserRow]]:
    """Users whose report budget is cleared after the test (the test Valkey outlives runs,
    and the next run's users get the same ids)."""
    made: list[UserRow] = []
    yield made
    for user in made:
        await throttle.clear(REPORTS_BY_USER, str(user.id))


async def make_staff() -> UserRow:
    identity = new_identity("staff")
    return await do_create_user(
        identity["username"], identity["email"], identity["password"], is_staff=True
    )


async def test_a_signed_in_user_reports_a_poll_they_see() -> None:
    owner, reporter = await make_user(), await make_user()
    poll = await make_poll(owner)
    before = (await client_for(owner).get(f"/api/poll/{poll.id}")).json()

    response = await report(reporter, poll.id, {"reason": "abuse", "note": "  rude words  "})
    assert response.status_code == 202, response.content
    assert response.json() == {"status": "received"}

    [stored] = await stored_reports(poll.id)
    assert (stored.reporter_id, stored.reason, stored.note) == (reporter.id, "abuse", "rude words")
    assert (stored.resolution, stored.resolved_by, stored.resolved_at) == (None, None, None)
    # The creator's view of the poll says nothing about reports, let alone who filed them.
    assert (await client_for(owner).get(f"/api/poll/{poll.id}")).json() == before
    page = await client_for(owner).get(f"/api/poll/{poll.id}")
    assert reporter.username.encode() not in page.content


async def test_every_reason_is_accepted_and_a_blank_note_is_no_note() -> None:
    poll = await make_poll(await make_user())
    for reason in ("spam", "abuse", "illegal", "other"):
        response = await report(await make_user(), poll.id, {"reason": reason, "note": "   "})
        assert response.status_code == 202, response.content
    assert [(r.reason, r.note) for r in await stored_reports(poll.id)] == [
        ("spam", None),
        ("abuse", None),
        ("illegal", None),
        ("other", None),
    ]


async def test_anonymous_callers_get_401_before_the_body_is_read() -> None:
    poll = await make_poll(await make_user())
    for body in ({"reason": "spam"}, {"reason": "nonsense"}, "not json"):
        response = await report(None, poll.id, body)
        assert response.status_code == 401
        assert response.json() == {"detail": "Not authenticated"}
    assert await stored_reports(poll.id) == []


async def test_a_poll_the_caller_may_not_view_is_not_found() -> None:
    owner, stranger = await make_user(), await make_user()
    private = await make_poll(owner, perms="private")
    for poll_id in (private.id, 2**62):
        response = await report(stranger, poll_id)
        assert response.status_code == 404
        assert response.json() == {"detail": "Poll not found"}
    assert await stored_reports(private.id) == []

    # Shared with them, they may report it.
    await grant(stranger, private, "viewer")
    assert (await report(stranger, private.id)).status_code == 202


async def test_one_open_report_per_user_and_poll() -> None:
    owner, reporter, staff = await make_user(), await make_user(), await make_staff()
    poll = await make_poll(owner)
    assert (await report(reporter, poll.id)).status_code == 202
    again = await report(reporter, poll.id, {"reason": "illegal"})
    assert again.status_code == 409
    assert again.json() == {"detail": "You have already reported this poll"}
    assert (await report(await make_user(), poll.id)).status_code == 202

    # Once the moderators resolved it, the user may report the poll again.
    resolved = await do_dismiss_reports([poll.id], staff)
    assert resolved.reports == {poll.id: 2}
    assert (await report(reporter, poll.id, {"reason": "illegal"})).status_code == 202
    reports = await stored_reports(poll.id)
    assert [(r.reporter_id, r.reason, r.resolution) for r in reports] == [
        (reporter.id, "spam", "dismissed"),
        (reports[1].reporter_id, "spam", "dismissed"),
        (reporter.id, "illegal", None),
    ]
    assert all(r.resolved_by == staff.id for r in reports[:2])


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"reason": "boring"},
        {"reason": "SPAM"},
        {"reason": "spam", "note": "x" * 501},
        {"reason": "spam", "note": "nul\x00byte"},
        {"reason": "spam", "note": 5},
        {"reason": "spam", "extra": True},
        [],
    ],
)
async def test_invalid_bodies_get_422(body) -> None:
    poll = await make_poll(await make_user())
    response = await report(await make_user(), poll.id, body)
    assert response.status_code == 422, response.content
    assert {"type", "loc", "msg"} <= set(response.json()["detail"][0])
    assert await stored_reports(poll.id) == []


async def test_a_note_of_500_characters_is_kept_whole() -> None:
    poll = await make_poll(await make_user())
    note = "é" * 500
    response = await report(await make_user(), poll.id, {"reason": "other", "note": note})
    assert response.status_code == 202
    assert [r.note for r in await stored_reports(poll.id)] == [note]


@pytest.mark.parametrize("poll_id", ["0", "-1", "9223372036854775808", "abc"])
async def test_ids_outside_bigint_get_422(poll_id) -> None:
    response = await report(await make_user(), poll_id)
    assert response.status_code == 422


async def test_past_the_hourly_rate_reports_get_429(reporters) -> None:
    reporter = await make_user()
    reporters.append(reporter)
    polls = [await make_poll(await make_user()) for _ in range(3)]
    with override_settings(REPORTS_PER_HOUR=2):
        assert (await report(reporter, polls[0].id)).status_code == 202
        assert (await report(reporter, polls[1].id)).status_code == 202
        refused = await report(reporter, polls[2].id)
    assert refused.status_code == 429
    assert refused.json() == {"detail": "Too many reports; try again later"}
    # One report per half hour comes back: the client is told when.
    assert 1500 <= int(refused["Retry-After"]) <= 1800
    assert await stored_reports(polls[2].id) == []
    # The limit is per user.
    with override_settings(REPORTS_PER_HOUR=2):
        assert (await report(await make_user(), polls[2].id)).status_code == 202


async def test_the_route_is_in_the_openapi_schema(api) -> None:
    schema = (await api.get("/api/openapi.json")).json()
    operation = schema["paths"]["/api/poll/{poll_id}/report"]["post"]
    assert operation["operationId"] == "report_poll"
    assert set(operation["responses"]) == {
        "202",
        "400",
        "401",
        "404",
        "409",
        "413",
        "415",
        "422",
        "429",
    }
    components = schema["components"]["schemas"]
    assert components["ReportPollPayload"]["properties"]["reason"]["enum"] == [
        "spam",
        "abuse",
        "illegal",
        "other",
    ]
    assert components["ReportPollPayload"]["required"] == ["reason"]
    assert set(components["ReportReceived"]["properties"]) == {"status"}


# --- Auto-hide ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Audience:
    owner: UserRow
    shared_with: UserRow
    moderator: UserRow
    stranger: UserRow


async def audience_of(poll_owner: UserRow) -> tuple[SamplePoll, Audience]:
    """A public poll and the people around it: its creator, a user it was shared with,
    a moderator and a stranger."""
    poll = await make_poll(poll_owner)
    shared_with, moderator, stranger = await make_user(), await make_user(), await make_user()
    await grant(shared_with, poll, "voter")
    assert await do_grant_moderator(moderator.id)
    return poll, Audience(poll_owner, shared_with, moderator, stranger)


async def statuses(poll_id: int, audience: Audience) -> dict[str, int]:
    """Who gets the poll (GET /api/poll/{id}) and its counts (GET /api/vote/{id})."""
    found = {}
    for name, user in (
        ("anonymous", None),
        ("stranger", audience.stranger),
        ("owner", audience.owner),
        ("shared_with", audience.shared_with),
        ("moderator", audience.moderator),
    ):
        client = client_for(user)
        poll = (await client.get(f"/api/poll/{poll_id}")).status_code
        counts = (await client.get(f"/api/vote/{poll_id}")).status_code
        found[name] = poll if poll == counts else -1
    return found


async def in_public_feed(poll_id: int, user: UserRow | None = None) -> bool:
    return await feed_ids(client_for(user), before=poll_id + 1, limit=1) == [poll_id]


EVERYONE_SEES = dict.fromkeys(("anonymous", "stranger", "owner", "shared_with", "moderator"), 200)


async def test_auto_hide_takes_a_poll_out_of_public_view_until_dismissed() -> None:
    poll, audience = await audience_of(await make_user())
    staff = await make_staff()
    first_reporter = await make_user()
    with override_settings(REPORTS_AUTOHIDE_THRESHOLD=2):
        first = await do_report_poll(poll.id, first_reporter, "spam")
        assert not first.hid_poll
        # The same user reporting again does not count twice.
        assert (await report(first_reporter, poll.id)).status_code == 409
        assert await statuses(poll.id, audience) == EVERYONE_SEES
        assert await in_public_feed(poll.id)

        second = await do_report_poll(poll.id, await make_user(), "abuse")
        assert second.hid_poll
        # Those who still see it may still report it; it is hidden already.
        third = await do_report_poll(poll.id, audience.shared_with, "other")
        assert not third.hid_poll

    assert await statuses(poll.id, audience) == {
        "anonymous": 404,
        "stranger": 404,
        "owner": 200,
        "shared_with": 200,
        "moderator": 200,
    }
    assert not await in_public_feed(poll.id)
    assert not await in_public_feed(poll.id, audience.stranger)
    assert await in_public_feed(poll.id, audience.owner)
    # Nobody without a grant of their own votes on it (a public poll's vote is a grant).
    vote = await client_for(audience.stranger).post(
        "/api/vote/submit",
        {"poll_id": poll.id, "vote_option_id": poll.option_ids[0]},
        content_type="application/json",
    )
    assert vote.status_code == 403
    # Hidden, it is not reported any more by those who cannot see it.
    assert (await report(await make_user(), poll.id)).status_code == 404

    with pytest.raises(Forbidden):
        await do_dismiss_reports([poll.id], audience.moderator)  # a moderator is not staff
    dismissed = await do_dismiss_reports([poll.id], staff)
    assert dismissed.reports == {poll.id: 3}
    assert dismissed.unhidden == [poll.id]
    assert await statuses(poll.id, audience) == EVERYONE_SEES
    assert await in_public_feed(poll.id)


async def test_the_report_that_reaches_the_threshold_hides_the_poll() -> None:
    poll = await make_poll(await make_user())
    with override_settings(REPORTS_AUTOHIDE_THRESHOLD=2):
        assert not (await do_report_poll(poll.id, await make_user(), "spam")).hid_poll
        assert (await do_report_poll(poll.id, await make_user(), "spam")).hid_poll
    assert (await client_for(None).get(f"/api/poll/{poll.id}")).status_code == 404


async def test_without_a_threshold_no_number_of_reports_hides_a_poll() -> None:
    poll, audience = await audience_of(await make_user())
    assert settings.REPORTS_AUTOHIDE_THRESHOLD == 0  # the default: off
    for _ in range(5):
        filed = await do_report_poll(poll.id, await make_user(), "spam")
        assert not filed.hid_poll
    assert await statuses(poll.id, audience) == EVERYONE_SEES
    assert await in_public_feed(poll.id)
    assert len(await stored_reports(poll.id)) == 5


async def test_a_private_poll_hidden_by_reports_is_still_seen_by_those_it_is_shared_with() -> None:
    owner = await make_user()
    private = await make_poll(owner, perms="private")
    readers = [await make_user() for _ in range(2)]
    for reader in readers:
        await grant(reader, private, "viewer")
    with override_settings(REPORTS_AUTOHIDE_THRESHOLD=2):
        for reader in readers:
            assert (await report(reader, private.id)).status_code == 202
    for user in (owner, *readers):
        assert (await client_for(user).get(f"/api/poll/{private.id}")).status_code == 200
