"""Changelist columns and counts built for large tables: votes per poll, polls and votes
per user, the creator filter, and the paginator that stops counting exactly past a limit."""

from __future__ import annotations

import re

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command

from accounts.models import User as UserModel
from feedapp import changelists
from feedapp.changelists import EstimatedCountPaginator, planner_estimate
from polls.admin import PollAdmin
from polls.models import Poll
from tests.admin_client import make_admin
from tests.polls import db_counts, make_poll
from tests.users import client_for, make_user
from tests.waiting import eventually

POLLS = "/admin/polls/poll/"
USERS = "/admin/accounts/user/"


def listed(page) -> list[int]:
    return [int(i) for i in re.findall(rb'name="_selected_action" value="(\d+)"', page.content)]


def cell(page, row_id: int, column: str) -> str:
    """The text of one cell of a changelist row."""
    html = page.content.decode()
    row = re.search(rf'name="_selected_action" value="{row_id}".*?</tr>', html, re.S)
    assert row is not None, f"row {row_id} not shown"
    found = re.search(rf'class="field-{column}[^"]*">(.*?)</t[dh]>', row.group(0), re.S)
    assert found is not None, f"no {column} cell"
    return re.sub(r"<[^>]+>", "", found.group(1)).strip()


async def vote(user, poll_id: int, option_id: int) -> None:
    response = await client_for(user).post(
        "/api/vote/submit",
        {"poll_id": poll_id, "vote_option_id": option_id},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content


@pytest.mark.usefixtures("vote_consumer")
async def test_polls_show_their_votes_sort_by_them_and_filter_by_creator() -> None:
    staff = await make_admin()
    creator = await make_user("pollster")
    popular, quiet = await make_poll(creator), await make_poll(creator)
    voters = [await make_user() for _ in range(3)]
    for voter in voters:
        await vote(voter, popular.id, popular.option_ids[0])
    await vote(voters[0], quiet.id, quiet.option_ids[1])
    expected = {popular.id: 3, quiet.id: 1}
    for poll_id, total in expected.items():

        async def counted(poll_id: int = poll_id) -> int:
            return sum((await db_counts(poll_id)).values())

        assert await eventually(counted, total) == total

    page = await staff.client.get(POLLS, {"creator": str(creator.id)})
    assert page.status_code == 200
    assert sorted(listed(page)) == sorted(expected)
    assert {poll_id: int(cell(page, poll_id, "total_votes")) for poll_id in expected} == expected
    index = ["action_checkbox", *PollAdmin.list_display].index("total_votes")
    ascending = await staff.client.get(POLLS, {"creator": str(creator.id), "o": str(index)})
    assert listed(ascending) == [quiet.id, popular.id]
    descending = await staff.client.get(POLLS, {"creator": str(creator.id), "o": f"-{index}"})
    assert listed(descending) == [popular.id, quiet.id]
    # The filter offers the creator named in the URL, and nobody else.
    assert creator.username in cell(page, popular.id, "creator")
    assert (await staff.client.get(POLLS, {"creator": "x"})).status_code == 200


@pytest.mark.usefixtures("vote_consumer")
async def test_users_show_the_polls_they_created_and_the_votes_they_cast() -> None:
    staff = await make_admin()
    author, voter = await make_user("author"), await make_user("voter")
    polls = [await make_poll(author) for _ in range(2)]
    for poll in polls:
        await vote(voter, poll.id, poll.option_ids[0])

    async def applied() -> int:
        return sum([sum((await db_counts(poll.id)).values()) for poll in polls])

    assert await eventually(applied, 2) == 2
    page = await staff.client.get(USERS, {"q": author.username})
    assert cell(page, author.id, "polls_created") == "2"
    assert cell(page, author.id, "votes_cast") == "0"
    assert f"{POLLS}?creator={author.id}" in page.content.decode()
    page = await staff.client.get(USERS, {"q": voter.username})
    assert (cell(page, voter.id, "polls_created"), cell(page, voter.id, "votes_cast")) == ("0", "2")


def _paginated_count(limit: int, queryset) -> int:
    changelists.EXACT_COUNT_LIMIT = limit
    return EstimatedCountPaginator(queryset, 100).count


async def test_counts_are_exact_up_to_the_limit_and_estimated_past_it(monkeypatch) -> None:
    monkeypatch.setattr(changelists, "EXACT_COUNT_LIMIT", changelists.EXACT_COUNT_LIMIT)
    author = await make_user("counted")
    for _ in range(5):
        await make_poll(author)
    mine = Poll.objects.filter(creator_id=author.id)
    count = sync_to_async(_paginated_count)
    assert await count(10, mine) == 5
    assert await count(5, mine) == 5
    # Past the limit the planner's estimate stands in, never below what was counted.
    assert await count(4, mine) == max(5, await sync_to_async(planner_estimate)(mine))
    everyone = UserModel.objects.all()
    assert await sync_to_async(planner_estimate)(everyone) >= 0


async def test_large_changelists_skip_the_full_count() -> None:
    staff = await make_admin()
    for url in (POLLS, USERS, "/admin/polls/pollgrant/", "/admin/moderation/reportedpoll/"):
        # A filtered page shows "(N total)" when Django counted the whole table too.
        page = await staff.client.get(url, {"q": "nothing like this"})
        assert page.status_code == 200, url
        assert b"Show all" in page.content, url
        assert b" total<" not in page.content, url
        # No facet counts (one count per filter choice) either.
        assert b"_facets" not in page.content, url


def test_the_system_checks_pass() -> None:
    call_command("check", fail_level="WARNING")
