"""Live streams end to end on real servers on 127.0.0.1: uvicorn with two worker processes
(production's shape) and daphne (`runserver`), votes through the API, the real consumer,
Kafka, PostgreSQL and Valkey."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin

from accounts.auth import COOKIE_NAME
from accounts.tokens import issue_token
from stack import valkey as valkey_service
from stack.profiles import get_profile
from tests.polls import db_counts, db_version, make_poll, submit_vote
from tests.servers import Server, start_server
from tests.sse_client import LiveStream
from tests.users import client_for, make_user
from tests.waiting import eventually

pytestmark = pytest.mark.usefixtures("vote_consumer")
PROFILE = get_profile("test")


@pytest.fixture(scope="module")
def uvicorn_server(tmp_path_factory) -> Iterator[Server]:
    server = start_server("uvicorn", tmp_path_factory.mktemp("uvicorn") / "server.log", workers=2)
    yield server
    server.stop()


async def open_stream(server: Server, poll_id: int, user=None) -> LiveStream:
    cookies = {COOKIE_NAME: issue_token(user.id)} if user else {}
    stream = await LiveStream(f"{server.url}/api/vote/stream/{poll_id}", cookies).open()
    assert stream.status == 200, server.log_tail()
    return stream


def has_version(version: int):
    return lambda stream: any(event.id == version for event in stream.updates())


async def close_all(*streams: LiveStream) -> None:
    for stream in streams:
        await stream.close()


async def test_a_vote_reaches_the_streams_of_its_poll_and_no_other(uvicorn_server) -> None:
    creator, voter = await make_user(), await make_user()
    poll, other = await make_poll(creator, options=2), await make_poll(creator, options=2)
    a, b = poll.option_ids
    watchers = [await make_user() for _ in range(3)]
    first = await open_stream(uvicorn_server, poll.id, watchers[0])
    second = await open_stream(uvicorn_server, poll.id, watchers[1])
    elsewhere = await open_stream(uvicorn_server, other.id, watchers[2])
    try:
        for stream in (first, second, elsewhere):
            assert await stream.wait_for(has_version(0))

        assert await submit_vote(client_for(voter), poll.id, b) == 201
        for stream in (first, second):
            assert await stream.wait_for(has_version(1)), uvicorn_server.log_tail()
            assert stream.latest_counts() == {a: 0, b: 1}
            assert [event.id for event in stream.updates()] == [0, 1]

        # A vote on the other poll arrives there after the first one was published: had the
        # first reached the wrong stream, it would show before this one.
        assert await submit_vote(client_for(voter), other.id, other.option_ids[0]) == 201
        assert await elsewhere.wait_for(has_version(1))
        assert [event.counts() for event in elsewhere.updates()] == [
            {other.option_ids[0]: 0, other.option_ids[1]: 0},
            {other.option_ids[0]: 1, other.option_ids[1]: 0},
        ]
        assert not any(stream.ended or stream.error for stream in (first, second, elsewhere))
    finally:
        await close_all(first, second, elsewhere)


async def test_websocket_gets_the_same_update_as_the_stream(uvicorn_server) -> None:
    creator, voter = await make_user(), await make_user()
    poll = await make_poll(creator, options=2)
    a, b = poll.option_ids
    stream = await open_stream(uvicorn_server, poll.id, await make_user())
    cookie = f"{COOKIE_NAME}={issue_token(creator.id)}"
    try:
        async with ws_connect(
            f"{uvicorn_server.ws_url}/ws/poll/{poll.id}",
            additional_headers={"Cookie": cookie},
            origin=Origin("http://localhost:5173"),
        ) as ws:
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["id"] == 0
            assert await submit_vote(client_for(voter), poll.id, a) == 201
            frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
            assert frame == {
                "event": "vote_update",
                "id": 1,
                "data": [
                    {"vote_option_id": a, "vote_count": 1},
                    {"vote_option_id": b, "vote_count": 0},
                ],
            }
            assert await stream.wait_for(has_version(1))
            assert stream.updates()[-1].data == frame["data"]
    finally:
        await stream.close()

    with pytest.raises(InvalidStatus) as refused:
        async with ws_connect(
            f"{uvicorn_server.ws_url}/ws/poll/{poll.id}", origin=Origin("https://evil.example")
        ):
            pass
    assert refused.value.response.status_code == 403


async def test_deleting_a_poll_sends_poll_deleted_and_ends_its_streams(uvicorn_server) -> None:
    creator = await make_user()
    poll = await make_poll(creator)
    streams = [await open_stream(uvicorn_server, poll.id, await make_user()) for _ in range(2)]
    cookie = f"{COOKIE_NAME}={issue_token(creator.id)}"
    try:
        async with ws_connect(
            f"{uvicorn_server.ws_url}/ws/poll/{poll.id}", additional_headers={"Cookie": cookie}
        ) as ws:
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["event"] == "vote_update"
            for stream in streams:
                assert await stream.wait_for(has_version(0))

            response = await client_for(creator).delete(f"/api/poll/{poll.id}")
            assert response.status_code == 204

            assert json.loads(await asyncio.wait_for(ws.recv(), 30)) == {"event": "poll_deleted"}
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 30)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
        for stream in streams:
            assert await stream.wait_for(lambda s: s.ended), uvicorn_server.log_tail()
            assert stream.error is None
            last = stream.events[-1]
            assert (last.name, last.data) == ("poll_deleted", {})
            assert last.raw == "event: poll_deleted\ndata: {}"
    finally:
        await close_all(*streams)
    # The poll is gone: a new stream is refused.
    gone = await LiveStream(f"{uvicorn_server.url}/api/vote/stream/{poll.id}").open()
    assert gone.status == 404
    await gone.close()


@pytest.mark.stack_control
async def test_streams_survive_a_valkey_restart_and_show_correct_counts(uvicorn_server) -> None:
    creator = await make_user()
    poll = await make_poll(creator, options=3)
    voters = [await make_user() for _ in range(4)]
    streams = [await open_stream(uvicorn_server, poll.id, await make_user()) for _ in range(3)]
    try:
        for stream in streams:
            assert await stream.wait_for(has_version(0))
        assert await submit_vote(client_for(voters[0]), poll.id, poll.option_ids[0]) == 201
        for stream in streams:
            assert await stream.wait_for(has_version(1))

        valkey_service.stop(PROFILE)
        try:
            # Votes keep coming while Valkey is down. The consumer applies what it has to
            # PostgreSQL, cannot publish it, and pauses until Valkey is back.
            for voter, option in zip(voters[1:], [1, 1, 2], strict=True):
                assert await submit_vote(client_for(voter), poll.id, poll.option_ids[option]) == 201

            async def applied() -> bool:
                return await db_version(poll.id) > 1

            assert await eventually(applied, True)
            for stream in streams:
                assert not stream.ended and stream.error is None
        finally:
            valkey_service.start(PROFILE)

        expected = {poll.option_ids[0]: 1, poll.option_ids[1]: 2, poll.option_ids[2]: 1}
        assert await eventually(lambda: db_counts(poll.id), expected) == expected

        for stream in streams:
            assert await stream.wait_for(lambda s: s.latest_counts() == expected), (
                uvicorn_server.log_tail()
            )
            assert not stream.ended and stream.error is None
            versions = [event.id or 0 for event in stream.updates()]
            assert versions == sorted(set(versions))
    finally:
        await close_all(*streams)


@pytest.mark.parametrize("kind", ["uvicorn", "daphne"])
async def test_streams_end_cleanly_when_the_server_stops(kind, tmp_path) -> None:
    server = start_server(kind, tmp_path / "server.log")
    try:
        creator, voter = await make_user(), await make_user()
        poll = await make_poll(creator, options=2)
        stream = await open_stream(server, poll.id, await make_user())
        assert await stream.wait_for(has_version(0))
        if kind == "daphne":  # the development server serves votes' updates too
            assert await submit_vote(client_for(voter), poll.id, poll.option_ids[1]) == 201
            assert await stream.wait_for(has_version(1)), server.log_tail()

        server.terminate()
        assert await stream.wait_for(lambda s: s.ended or s.error is not None)
        # A complete response, not a connection cut in the middle.
        assert stream.error is None and stream.ended, server.log_tail()
        assert await asyncio.to_thread(server.wait, 30) is not None, server.log_tail()
        await stream.close()
    finally:
        server.stop()
