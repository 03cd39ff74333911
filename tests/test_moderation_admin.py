"""The review queue in the admin: what it lists, and its actions with their effects.

As in test_admin.py, the admin runs in this process on Django's own connection and the
rows are made through the services. A deleted poll's live stream is read from a real
uvicorn server, which learns of the deletion the way every web process does.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.admin.models import CHANGE, DELETION
from django.test import override_settings

from accounts.auth import COOKIE_NAME
from accounts.rows import UserRow
from accounts.services import do_create_user
from accounts.tokens import issue_token
from db.pool import connection
from db.readonly import ReadOnlyModel
from db.sql import fetch_all
from moderation.admin import ReviewQueueAdmin
from moderation.models import Report, ReportedPoll
from moderation.services import do_report_poll
from tests.accounts_client import AddressedClient, new_identity, register
from tests.admin_client import admin_log, make_admin
from tests.polls import SamplePoll, make_poll
from tests.servers import Server, start_server
from tests.sse_client import LiveStream
from tests.users import client_for, make_user
from tests.waiting import eventually
from votes.models import PollCounts

QUEUE = "/admin/moderation/reportedpoll/"
REPORTS = "/admin/moderation/report/"
POLLS = "/admin/polls/poll/"
USERS = "/admin/accounts/user/"


@pytest.fixture(scope="module")
def uvicorn_server(tmp_path_factory) -> Iterator[Server]:
    server = start_server("uvicorn", tmp_path_factory.mktemp("uvicorn") / "server.log")
    yield server
    server.stop()


def listed(page) -> list[int]:
    """The ids of a changelist page's rows, in the order shown."""
    return [int(i) for i in re.findall(rb'name="_selected_action" value="(\d+)"', page.content)]


def sort_by(column: str, descending: bool = True) -> str:
    """The changelist's `o` parameter for one column (0 is the action checkbox)."""
    index = ["action_checkbox", *ReviewQueueAdmin.list_display].index(column)
    return f"-{index}" if descending else str(index)


async def reported(poll: SamplePoll, *reasons: str) -> list[UserRow]:
    """The poll reported once per reason, each by a new user; the reporters."""
    reporters = []
    for reason in reasons:
        reporter = await make_user("reporter")
        await do_report_poll(poll.id, reporter, reason, f"{reason} note")  # type: ignore[arg-type]
        reporters.append(reporter)
    return reporters


@dataclass(frozen=True)
class ReportState:
    resolution: str | None
    resolved_by: int | None


async def report_states(poll_id: int) -> list[ReportState]:
    async with connection() as conn:
        return await fetch_all(
            conn,
            "SELECT resolution::text, resolved_by FROM poll_report WHERE poll_id = %s ORDER BY id",
            (poll_id,),
            ReportState,
        )


async def in_queue(client, poll_id: int) -> bool:
    page = await client.get(QUEUE, {"q": "Test question", "o": sort_by("last_reported")})
    assert page.status_code == 200
    return poll_id in listed(page)


# --- The queue ----------------------------------------------------------------------------


async def test_the_queue_lists_polls_with_open_reports_newest_or_most_reported_first() -> None:
    staff = await make_admin()
    owner = await make_user("owner")
    many, newest, quiet = [await make_poll(owner) for _ in range(3)]
    await reported(many, "spam", "abuse", "spam")
    await reported(newest, "illegal")

    page = await staff.client.get(QUEUE)
    assert page.status_code == 200
    rows = listed(page)
    assert rows.index(newest.id) < rows.index(many.id)
    assert quiet.id not in rows

    by_count = listed(await staff.client.get(QUEUE, {"o": sort_by("open_reports")}))
    assert by_count.index(many.id) < by_count.index(newest.id)

    text = page.content.decode()
    assert "spam: 2, abuse: 1" in text
    assert "illegal: 1" in text
    assert owner.username in text

    assert listed(await staff.client.get(QUEUE, {"reason": "illegal", "q": "Test question"}))[
        :1
    ] == [newest.id]
    assert many.id not in listed(await staff.client.get(QUEUE, {"reason": "illegal"}))


async def test_a_polls_page_in_the_queue_shows_its_reports_and_history_leads_to_the_poll() -> None:
    staff = await make_admin()
    poll = await make_poll(await make_user())
    [reporter] = await reported(poll, "abuse")
    page = await staff.client.get(f"{QUEUE}{poll.id}/change/")
    assert page.status_code == 200
    text = page.content.decode()
    assert reporter.username in text
    assert "abuse note" in text
    assert f"{REPORTS}?poll={poll.id}" in text

    history = await staff.client.get(f"{QUEUE}{poll.id}/history/")
    assert history.status_code == 302
    assert history["Location"] == f"{POLLS}{poll.id}/history/"

    reports = await staff.client.get(REPORTS, {"poll": str(poll.id)})
    assert reports.status_code == 200
    assert reporter.username in reports.content.decode()
    assert len(listed(reports)) == 0  # no actions on reports: no checkboxes
    assert (await staff.client.get(REPORTS, {"reporter": str(reporter.id)})).status_code == 200


async def test_dismissing_resolves_the_reports_and_shows_a_hidden_poll_again() -> None:
    staff = await make_admin()
    poll, other = await make_poll(await make_user()), await make_poll(await make_user())
    with override_settings(REPORTS_AUTOHIDE_THRESHOLD=2):
        await reported(poll, "spam", "abuse")
    await reported(other, "other")
    assert (await client_for(None).get(f"/api/poll/{poll.id}")).status_code == 404

    response = await staff.client.action(QUEUE, "dismiss_reports", [poll.id])
    assert response.status_code == 302
    assert (await client_for(None).get(f"/api/poll/{poll.id}")).status_code == 200
    assert await report_states(poll.id) == [ReportState("dismissed", staff.user.id)] * 2
    assert await report_states(other.id) == [ReportState(None, None)]
    assert not await in_queue(staff.client, poll.id)
    assert await in_queue(staff.client, other.id)

    lines = await admin_log("polls", "poll", poll.id)
    assert [(line.action_flag, line.user_id, line.change_message) for line in lines] == [
        (CHANGE, staff.user.id, "Dismissed 2 open report(s). Shown to the public again.")
    ]
    history = await staff.client.get(f"{POLLS}{poll.id}/history/")
    assert b"Dismissed 2 open report(s)." in history.content


async def test_deleting_from_the_queue_asks_then_deletes_through_the_service(
    uvicorn_server, deleted_polls
) -> None:
    staff = await make_admin()
    owner = await make_user()
    doomed, kept = await make_poll(owner), await make_poll(owner)
    await reported(doomed, "illegal", "spam")
    await reported(kept, "spam")
    cookies = {COOKIE_NAME: issue_token(owner.id)}
    stream = await LiveStream(f"{uvicorn_server.url}/api/vote/stream/{doomed.id}", cookies).open()
    try:
        assert stream.status == 200
        assert await stream.wait_for(lambda s: bool(s.updates()))

        confirm = await staff.client.action(QUEUE, "delete_selected", [doomed.id])
        assert confirm.status_code == 200
        assert b"Are you sure" in confirm.content
        assert b"Cannot delete" not in confirm.content
        assert b"spam: 1, illegal: 1" in confirm.content
        assert deleted_polls == []

        response = await staff.client.action(QUEUE, "delete_selected", [doomed.id], post="yes")
        assert response.status_code == 302
        assert deleted_polls == [doomed.id]
        assert await stream.wait_for(lambda s: s.ended), uvicorn_server.log_tail()
        assert (stream.events[-1].name, stream.events[-1].data) == ("poll_deleted", {})
    finally:
        await stream.close()
    assert (await client_for(owner).get(f"/api/poll/{doomed.id}")).status_code == 404
    assert await report_states(doomed.id) == []  # gone with the poll
    assert await in_queue(staff.client, kept.id)
    lines = await admin_log("polls", "poll", doomed.id)
    assert [(line.action_flag, line.user_id, line.change_message) for line in lines] == [
        (DELETION, staff.user.id, "Deleted from the review queue (spam: 1, illegal: 1).")
    ]


@pytest.mark.usefixtures("vote_topic")
async def test_banning_a_creator_from_the_queue_ends_their_session_and_resolves_their_reports() -> (
    None
):
    staff = await make_admin()
    identity = new_identity("creator")
    creator_client = AddressedClient()
    info = await register(creator_client, identity)
    creator = UserRow(info["id"], identity["username"], identity["email"], True, False)
    first, second = await make_poll(creator), await make_poll(creator)
    bystander = await make_poll(await make_user())
    for poll in (first, second, bystander):
        await reported(poll, "abuse")

    async def me() -> int:
        return (await creator_client.get("/api/user/me")).status_code

    with override_settings(AUTH_USER_CACHE_SECONDS=1.0):
        assert await me() == 200
        page = await staff.client.action(QUEUE, "ban_creators", [first.id])
        assert page.status_code == 200 and identity["username"].encode() in page.content
        assert await me() == 200  # asked, not done
        response = await staff.client.action(
            QUEUE, "ban_creators", [first.id], confirm_ban="Yes, ban them"
        )
        assert response.status_code == 302
        assert await eventually(me, 401, within=settings.AUTH_USER_CACHE_SECONDS + 10) == 401
    vote = await creator_client.post_json(
        "/api/vote/submit", {"poll_id": bystander.id, "vote_option_id": bystander.option_ids[0]}
    )
    assert vote.status_code == 401

    for poll in (first, second):
        assert await report_states(poll.id) == [ReportState("creator_banned", staff.user.id)]
        assert not await in_queue(staff.client, poll.id)
        lines = await admin_log("polls", "poll", poll.id)
        assert [line.change_message for line in lines] == [
            "Resolved 1 open report(s): creator banned."
        ]
    assert await report_states(bystander.id) == [ReportState(None, None)]
    [line] = await admin_log("accounts", "user", creator.id)
    assert (line.user_id, line.change_message) == (
        staff.user.id,
        "Deactivated (banned) from the review queue; resolved 2 report(s) on 2 poll(s).",
    )


async def test_staff_ban_neither_themselves_nor_a_superuser_from_the_queue() -> None:
    staff = await make_admin()
    identity = new_identity("root")
    root = await do_create_user(
        identity["username"], identity["email"], identity["password"], is_superuser=True
    )
    theirs, mine = await make_poll(root), await make_poll(staff.user)
    await reported(theirs, "spam")
    await reported(mine, "spam")
    response = await staff.client.action(
        QUEUE, "ban_creators", [theirs.id, mine.id], confirm_ban="Yes, ban them"
    )
    assert response.status_code == 302
    page = await staff.client.get(QUEUE)
    assert b"Not yours to ban" in page.content
    assert await report_states(theirs.id) == [ReportState(None, None)]
    assert await report_states(mine.id) == [ReportState(None, None)]
    assert (await client_for(root).get("/api/user/me")).status_code == 200


async def test_only_staff_work_the_queue() -> None:
    poll = await make_poll(await make_user())
    await reported(poll, "spam")
    member = await make_user()
    client = client_for(member)  # an API session is no admin session
    assert (await client.get(QUEUE)).status_code == 302
    root = await make_admin(superuser=True)
    assert (await root.client.get(QUEUE)).status_code == 200
    index = await root.client.get("/admin/")
    assert b"Review queue" in index.content
    assert b"Reports" in index.content


async def test_the_moderation_models_read_only() -> None:
    poll = await make_poll(await make_user())
    await reported(poll, "spam")

    def attempts() -> dict[str, bool]:
        outcomes = {}
        for name, write in {
            "report update": lambda: Report.objects.filter(poll_id=poll.id).update(note="x"),
            "report delete": lambda: Report.objects.get(poll_id=poll.id).delete(),
            "queue delete": lambda: ReportedPoll.objects.filter(pk=poll.id).delete(),
            "counts update": lambda: PollCounts.objects.filter(pk=poll.id).update(version=0),
        }.items():
            try:
                write()
                outcomes[name] = False
            except ReadOnlyModel:
                outcomes[name] = True
        return outcomes

    outcomes = await sync_to_async(attempts)()
    assert outcomes == dict.fromkeys(outcomes, True)
    assert await report_states(poll.id) == [ReportState(None, None)]
