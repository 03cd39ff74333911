"""Deleting a poll: one service function, poll_deleted only after the commit, sync callers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from db.pool import connection
from db.sql import fetch_value
from db.sync_bridge import run_sync
from feedapp.errors import Forbidden, NotAuthenticated
from polls.errors import PollNotFound
from polls.services import do_delete_poll
from polls.signals import poll_deleted
from tests.poll_helpers import create_poll
from tests.users import client_for, make_user


class Recorder:
    """A poll_deleted receiver that notes each call and whether the deletion was visible."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, bool]] = []

    async def receive(self, sender: object, poll_id: int, **kwargs: Any) -> None:
        # Another connection sees the row gone only if the deletion was committed.
        async with connection() as conn:
            remaining = await fetch_value(
                conn, "SELECT count(*) FROM poll WHERE id = %s", (poll_id,)
            )
        self.calls.append((poll_id, remaining == 0))


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    recorder = Recorder()
    poll_deleted.connect(recorder.receive)
    yield recorder
    poll_deleted.disconnect(recorder.receive)


async def test_signal_is_sent_once_after_commit_and_not_on_refusals(api, recorder) -> None:
    owner = await make_user()
    client, other = client_for(owner), client_for(await make_user())
    poll = await create_poll(client)
    url = f"/api/poll/{poll['id']}"

    assert (await other.delete(url)).status_code == 403
    assert (await api.delete(url)).status_code == 401
    assert (await other.delete("/api/poll/9223372036854775807")).status_code == 404
    assert recorder.calls == []

    assert (await client.delete(url)).status_code == 204
    assert recorder.calls == [(poll["id"], True)]
    assert (await client.delete(url)).status_code == 404
    assert recorder.calls == [(poll["id"], True)]


async def test_connecting_twice_still_runs_once(recorder) -> None:
    poll_deleted.connect(recorder.receive)
    owner = await make_user()
    poll = await create_poll(client_for(owner))
    await do_delete_poll(poll["id"], owner)
    assert recorder.calls == [(poll["id"], True)]


async def test_a_failing_receiver_neither_fails_the_delete_nor_stops_others(recorder) -> None:
    async def broken(sender: object, poll_id: int, **kwargs: Any) -> None:
        raise ConnectionError("cache is down")

    # Connected first, so that it comes before the recorder.
    poll_deleted.disconnect(recorder.receive)
    poll_deleted.connect(broken)
    poll_deleted.connect(recorder.receive)
    try:
        owner = await make_user()
        poll = await create_poll(client_for(owner))
        assert (await client_for(owner).delete(f"/api/poll/{poll['id']}")).status_code == 204
    finally:
        poll_deleted.disconnect(broken)
    assert recorder.calls == [(poll["id"], True)]


async def test_service_errors() -> None:
    owner, other = await make_user(), await make_user()
    poll = await create_poll(client_for(owner), poll_perms="private")
    with pytest.raises(NotAuthenticated):
        await do_delete_poll(poll["id"], None)
    with pytest.raises(PollNotFound):
        await do_delete_poll(poll["id"], other)
    public = await create_poll(client_for(owner))
    with pytest.raises(Forbidden):
        await do_delete_poll(public["id"], other)


async def test_sync_callers_delete_and_send_the_signal(recorder) -> None:
    owner, other = await make_user(), await make_user()
    poll = await create_poll(client_for(owner))
    # From a thread without an event loop, as the admin or a management command calls it.
    with pytest.raises(Forbidden):
        await asyncio.to_thread(lambda: run_sync(do_delete_poll(poll["id"], other)))
    assert recorder.calls == []
    await asyncio.to_thread(lambda: run_sync(do_delete_poll(poll["id"], owner)))
    assert recorder.calls == [(poll["id"], True)]
    with pytest.raises(PollNotFound):
        await asyncio.to_thread(lambda: run_sync(do_delete_poll(poll["id"], owner)))
    assert len(recorder.calls) == 1


async def test_concurrent_deletes_send_the_signal_once(recorder) -> None:
    owner = await make_user()
    poll = await create_poll(client_for(owner))
    results = await asyncio.gather(
        *(do_delete_poll(poll["id"], owner) for _ in range(3)), return_exceptions=True
    )
    assert sorted(type(result).__name__ for result in results) == [
        "NoneType",
        "PollNotFound",
        "PollNotFound",
    ]
    assert recorder.calls == [(poll["id"], True)]
