"""The feed: visibility per caller, newest first, keyset pagination."""

from __future__ import annotations

from polls.services import do_create_poll
from tests.poll_helpers import create_poll, feed_ids
from tests.users import client_for, make_user


async def test_pages_neither_overlap_nor_skip_while_polls_are_added(api) -> None:
    author = await make_user("author")
    client = client_for(author)
    mine = [(await create_poll(client, question=f"Poll {i}"))["id"] for i in range(7)]
    oldest = min(mine)

    seen: list[list[int]] = []
    added: list[int] = []
    before = None
    while True:
        page = await feed_ids(api, limit=3, **({"before": before} if before else {}))
        seen.append(page)
        # New polls arrive between page requests; they must not shift later pages.
        added.append((await create_poll(client, question="Newcomer"))["id"])
        if not page or page[-1] <= oldest:
            break
        before = page[-1]

    flat = [poll_id for page in seen for poll_id in page]
    assert len(flat) == len(set(flat)), "a poll was served twice"
    assert flat == sorted(flat, reverse=True), "not newest first across pages"
    assert [poll_id for poll_id in flat if poll_id >= oldest] == sorted(mine, reverse=True)
    assert not set(added) & set(flat), "a poll created after the first page leaked in"
    assert seen[0][:3] == sorted(mine, reverse=True)[:3]
    assert all(len(page) == 3 for page in seen[:-1])


async def test_callers_see_only_what_they_may_view(api) -> None:
    author = await make_user()
    client = client_for(author)
    public_vote = (await create_poll(client, poll_perms="public_vote"))["id"]
    private = (await create_poll(client, poll_perms="private"))["id"]
    public_view = (await create_poll(client, poll_perms="public_view"))["id"]
    window = {"before": public_view + 1, "limit": 3}

    assert await feed_ids(client, **window) == [public_view, private, public_vote]
    assert (await feed_ids(api, **window))[:2] == [public_view, public_vote]
    stranger = client_for(await make_user())
    assert (await feed_ids(stranger, **window))[:2] == [public_view, public_vote]


async def test_page_carries_every_poll_with_its_options(api) -> None:
    author = await make_user()
    created = [
        await do_create_poll(author, f"Q{i}", [f"{i}-{n}" for n in range(2 + i)]) for i in range(4)
    ]
    page = (await api.get("/api/poll/all", {"before": created[-1].id + 1, "limit": 4})).json()
    assert page == [
        {
            "id": poll.id,
            "question": poll.question,
            "expires_at": None,
            "creator_name": author.username,
            "options": poll.options,
            "option_ids": poll.option_ids,
        }
        for poll in reversed(created)
    ]


async def test_default_and_maximum_page_sizes(api) -> None:
    author = await make_user()
    for i in range(51):
        await do_create_poll(author, f"Bulk {i}", ["yes", "no"])
    assert len(await feed_ids(api)) == 50
    assert len(await feed_ids(api, limit=51)) == 51
