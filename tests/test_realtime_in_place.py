"""Updates written in place: while a stream waits, the hub writes an update through the
stream's `express` function instead of waking its task (hub.Client). In this process, and
through production's HTTP protocol (feedapp.server) on a real socket, with the real
PostgreSQL and Valkey."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator

import pytest
import uvicorn

from feedapp.handler import FeedAppASGIHandler
from feedapp.server import SlowClientGuard
from realtime.hub import Client, Update, get_hub
from tests.polls import make_poll
from tests.sse_client import LiveStream
from tests.users import make_user
from tests.waiting import eventually
from votes import pubsub
from votes.rows import PollCounts


def update(version: int) -> Update:
    return Update(version, json.dumps([{"vote_option_id": 1, "vote_count": version}]))


class Recorder:
    """An express function that takes (or refuses) what it is given, and remembers it."""

    def __init__(self, accept: bool = True) -> None:
        self.accept = accept
        self.versions: list[int] = []

    def __call__(self, item: Update) -> bool:
        if self.accept:
            self.versions.append(item.version)
        return self.accept


async def parked(client: Client, until: float) -> asyncio.Task:
    """The client's stream waiting in `next`, with in-place writes allowed until `until`."""
    task = asyncio.create_task(client.next(within=30, express_until=until))
    await asyncio.sleep(0)
    return task


async def test_updates_are_written_in_place_while_the_stream_waits() -> None:
    loop = asyncio.get_running_loop()
    express = Recorder()
    client = Client(poll_id=1, express=express)
    waiting = await parked(client, loop.time() + 30)
    for version in (1, 2, 3):
        client.offer(update(version))
    client.offer(update(2))  # late and older: dropped, as for the mailbox
    await asyncio.sleep(0.05)
    assert express.versions == [1, 2, 3]
    assert client.written == 3 and client.pending is None
    assert not waiting.done()  # nobody woke the task
    waiting.cancel()


async def test_an_update_the_transport_refuses_wakes_the_stream() -> None:
    loop = asyncio.get_running_loop()
    client = Client(poll_id=1, express=Recorder(accept=False))
    waiting = await parked(client, loop.time() + 30)
    client.offer(update(4))
    assert await asyncio.wait_for(waiting, 5) == update(4)
    assert client.written == -1


async def test_past_its_window_an_update_wakes_the_stream() -> None:
    loop = asyncio.get_running_loop()
    express = Recorder()
    client = Client(poll_id=1, express=express)
    waiting = await parked(client, loop.time() + 0.1)
    client.offer(update(1))
    await asyncio.sleep(0.2)  # the window (the viewer's next check) has passed
    client.offer(update(2))
    assert await asyncio.wait_for(waiting, 5) == update(2)
    assert express.versions == [1]


async def test_a_busy_stream_is_not_written_in_place() -> None:
    express = Recorder()
    client = Client(poll_id=1, express=express)
    client.offer(update(1))  # not waiting: the task is writing something else
    waiting = asyncio.create_task(client.next(within=30, express_until=float("inf")))
    assert await asyncio.wait_for(waiting, 5) == update(1)
    assert express.versions == []


# --- through production's HTTP protocol -------------------------------------------------------


@pytest.fixture
async def production_server() -> AsyncIterator[str]:
    """uvicorn with feedapp.server's protocol, serving the API in this process and loop,
    so its hub is the one this test sees."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        FeedAppASGIHandler(), http=SlowClientGuard, loop="none", lifespan="off", log_level="warning"
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    await eventually(lambda: _started(server), True)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    await asyncio.wait_for(serving, 30)


async def _started(server: uvicorn.Server) -> bool:
    return server.started


async def publish(valkey_client, poll, version: int) -> None:
    counts = PollCounts(poll.id, version, poll.option_ids, [version, 0])
    await asyncio.to_thread(valkey_client.publish, *pubsub.encode(counts))


async def test_a_stream_gets_each_update_once_whether_written_in_place_or_not(
    production_server, valkey_client, settings
) -> None:
    # A short window, so that both paths are taken: an update is written in place only
    # while no check of the viewer is due; past the window the stream's task wakes,
    # checks, and writes the update itself.
    settings.AUTH_USER_CACHE_SECONDS = WINDOW
    # No periodic check meanwhile (they fall on multiples of the interval on the loop's
    # clock, and one would reopen the window at a moment of its own).
    settings.STREAM_RECHECK_SECONDS = 10**9
    poll = await make_poll(await make_user(), options=2)
    stream = await LiveStream(f"{production_server}/api/vote/stream/{poll.id}").open()
    hub = get_hub()
    try:
        assert stream.status == 200
        assert await eventually(lambda: _as_result(hub.stats().subscriptions), 1) == 1
        await asyncio.sleep(WINDOW + 0.5)
        await publish(valkey_client, poll, 1)  # past the window: the task checks, writes
        assert await stream.wait_for(shows(1))
        assert hub.written(poll.id) == [-1]
        await publish(valkey_client, poll, 2)  # just checked: written in place
        assert await eventually(lambda: _as_result(hub.written(poll.id)), [2]) == [2]
        assert await stream.wait_for(shows(2))
        await asyncio.sleep(WINDOW + 0.5)
        await publish(valkey_client, poll, 3)  # past the window again
        assert await stream.wait_for(shows(3))
        assert hub.written(poll.id) == [2]
        for version in range(4, 21):
            await publish(valkey_client, poll, version)
        assert await stream.wait_for(shows(20))
        assert hub.written(poll.id)[0] > 3  # the last ones in place, right after a check
        shown = [event.id for event in stream.updates() if event.id is not None]
        assert shown == sorted(set(shown)) and shown[-1] == 20  # in order, each once
        assert {0, 1, 2, 3} <= set(shown)
        assert stream.updates()[-1].counts() == dict(zip(poll.option_ids, [20, 0], strict=True))
        assert stream.error is None and not stream.ended
    finally:
        await stream.close()


WINDOW = 2.0


def shows(version: int):
    return lambda stream: any(event.id == version for event in stream.updates())


async def _as_result(value):
    return value
