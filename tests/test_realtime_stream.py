"""GET /api/vote/stream/{poll_id} and /ws/poll/{poll_id} in this process, through the whole
ASGI application: view rights, limits, headers, keepalives, the WebSocket's frames and
close codes."""

from __future__ import annotations

import json
import threading
from contextlib import asynccontextmanager

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import AsyncRequestFactory, override_settings

from accounts.auth import COOKIE_NAME
from accounts.tokens import issue_token
from feedapp.asgi import application
from realtime.limits import StreamSlots, get_slots, subject_for
from realtime.views import stream_counts
from tests.asgi_client import AsgiStream
from tests.polls import grant, make_poll
from tests.sse_client import parse_event
from tests.users import client_for, make_user
from tests.waiting import eventually


def stream_url(poll_id: int) -> str:
    return f"/api/vote/stream/{poll_id}"


async def open_stream(poll_id: int, user=None, **options) -> AsgiStream:
    return await AsgiStream(stream_url(poll_id), user, **options).open()


async def next_event(stream: AsgiStream):
    return parse_event((await stream.chunk()).decode().removesuffix("\n\n"))


async def leave(*streams: AsgiStream) -> None:
    for stream in streams:
        await stream.disconnect()


async def local_streams(subject: str) -> int:
    return get_slots().count(subject)


async def test_stream_headers_and_first_event() -> None:
    poll = await make_poll(await make_user(), options=2)
    stream = await open_stream(poll.id, headers=[(b"accept-encoding", b"gzip, br")])
    try:
        assert stream.status == 200
        headers = stream.response_headers
        assert headers["content-type"] == "text/event-stream"
        assert headers["cache-control"] == "no-cache"
        assert headers["x-accel-buffering"] == "no"
        assert "content-encoding" not in headers
        assert "content-length" not in headers
        first = await next_event(stream)
        assert (first.name, first.id) == ("vote_update", 0)
        assert first.data == [{"vote_option_id": o, "vote_count": 0} for o in poll.option_ids]
        assert first.raw.split("\n")[:2] == ["event: vote_update", "id: 0"]
    finally:
        await leave(stream)
    # Compression would buffer the stream: no compressing middleware on the path.
    assert not any("GZip" in middleware for middleware in settings.MIDDLEWARE)


@override_settings(SSE_KEEPALIVE_SECONDS=0.2)
async def test_a_quiet_stream_gets_keepalive_comments() -> None:
    poll = await make_poll(await make_user())
    stream = await open_stream(poll.id)
    try:
        assert (await next_event(stream)).name == "vote_update"
        for _ in range(2):
            assert await stream.chunk() == b": keepalive\n\n"
    finally:
        await leave(stream)


async def test_a_private_polls_stream_is_404_for_others() -> None:
    creator, viewer, stranger = await make_user(), await make_user(), await make_user()
    poll = await make_poll(creator, perms="private")
    await grant(viewer, poll, "viewer")

    for user in (None, stranger):
        refused = await open_stream(poll.id, user)
        assert refused.status == 404
        assert json.loads(await refused.body()) == {"detail": "Poll not found"}
    assert (await open_stream(2**62)).status == 404
    assert (await open_stream(2**70)).status == 422
    for user in (creator, viewer):
        stream = await open_stream(poll.id, user)
        assert stream.status == 200
        assert (await next_event(stream)).name == "vote_update"
        await leave(stream)


@override_settings(SSE_MAX_STREAMS_PER_USER=2)
async def test_streams_per_user_are_limited() -> None:
    user = await make_user()
    poll = await make_poll(user)
    subject = subject_for(user.id, "")
    first, second = await open_stream(poll.id, user), await open_stream(poll.id, user)
    assert (first.status, second.status) == (200, 200)

    refused = await open_stream(poll.id, user)
    assert refused.status == 429
    assert json.loads(await refused.body()) == {"detail": "At most 2 live streams at a time"}
    other = await open_stream(poll.id, await make_user())  # another user is not affected
    assert other.status == 200

    await leave(first, other)  # a stream that ended gives its place back
    assert await local_streams(subject) == 1
    third = await open_stream(poll.id, user)
    assert third.status == 200
    await leave(second, third)
    assert await local_streams(subject) == 0


@override_settings(SSE_MAX_STREAMS_PER_USER=2)
async def test_the_user_limit_holds_across_processes() -> None:
    user = await make_user()
    poll = await make_poll(user)
    subject = subject_for(user.id, "")
    # Another web process (slots of its own, the same Valkey) holds two streams of the user.
    elsewhere = StreamSlots()
    held = [await elsewhere.acquire(subject) for _ in range(2)]
    try:
        refused = await open_stream(poll.id, user)
        assert refused.status == 429
        assert await local_streams(subject) == 0
    finally:
        for slot in held:
            slot.release()

    # Released leases are removed in the background; then the user may stream here.
    async def status() -> int:
        stream = await open_stream(poll.id, user)
        if stream.status == 200:
            await leave(stream)
        else:
            await stream.body()
        return stream.status

    assert await eventually(status, 200) == 200


@override_settings(SSE_MAX_STREAMS_PER_USER=1)
async def test_anonymous_streams_are_counted_per_client_address() -> None:
    poll = await make_poll(await make_user())
    first = await open_stream(poll.id, address="192.0.2.10")
    assert first.status == 200
    assert (await open_stream(poll.id, address="192.0.2.10")).status == 429
    elsewhere = await open_stream(poll.id, address="192.0.2.11")
    assert elsewhere.status == 200
    await leave(first, elsewhere)


async def test_streams_per_process_are_limited() -> None:
    poll = await make_poll(await make_user())
    with override_settings(SSE_MAX_STREAMS_PER_PROCESS=get_slots().total + 1):
        first = await open_stream(poll.id, await make_user())
        second = await open_stream(poll.id, await make_user())
        assert first.status == 200
        assert second.status == 429
        assert json.loads(await second.body()) == {
            "detail": "This server has too many live streams; try again later"
        }
        await leave(first)


async def test_streams_do_not_cost_a_thread_each() -> None:
    poll = await make_poll(await make_user())
    before = threading.active_count()
    streams = [await open_stream(poll.id, await make_user()) for _ in range(30)]
    try:
        for stream in streams:
            assert (await next_event(stream)).name == "vote_update"
        # Django would give each request's synchronous parts a thread for its whole life.
        assert threading.active_count() - before < 5
    finally:
        await leave(*streams)


async def test_a_response_never_started_gives_its_place_back() -> None:
    user = await make_user()
    poll = await make_poll(user)
    subject = subject_for(user.id, "")
    request = AsyncRequestFactory().get(stream_url(poll.id))
    request.COOKIES[COOKIE_NAME] = issue_token(user.id)
    response = await stream_counts(request, poll.id)
    assert response.status_code == 200
    assert await local_streams(subject) == 1
    # The client left before the body started: the response is dropped unread.
    del response
    assert await local_streams(subject) == 0


async def test_the_stream_route_is_documented(api) -> None:
    schema = (await api.get("/api/openapi.json")).json()
    operation = schema["paths"]["/api/vote/stream/{poll_id}"]["get"]
    assert set(operation["responses"]) >= {"200", "404", "429"}
    assert "text/event-stream" in operation["responses"]["200"]["content"]


# --- WebSocket ------------------------------------------------------------------------------


@asynccontextmanager
async def websocket(poll_id: int, user=None, origin: str | None = None):
    headers = []
    if user is not None:
        headers.append((b"cookie", f"{COOKIE_NAME}={issue_token(user.id)}".encode()))
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    communicator = WebsocketCommunicator(application, f"/ws/poll/{poll_id}", headers=headers)
    try:
        yield communicator
    finally:
        await communicator.disconnect()


async def test_websocket_sends_the_counts_and_closes_with_a_code_when_refused() -> None:
    creator = await make_user()
    private = await make_poll(creator, options=2, perms="private")

    async with websocket(private.id, creator) as ws:
        connected, _ = await ws.connect()
        assert connected
        assert await ws.receive_json_from(timeout=10) == {
            "event": "vote_update",
            "id": 0,
            "data": [{"vote_option_id": o, "vote_count": 0} for o in private.option_ids],
        }

    for user in (None, await make_user()):
        async with websocket(private.id, user) as ws:
            await ws.connect()
            assert await ws.receive_output(timeout=10) == {"type": "websocket.close", "code": 4404}

    async with websocket(private.id, creator, origin="https://evil.example") as ws:
        connected, _ = await ws.connect()
        # Closed before accepting: servers answer the handshake with 403.
        assert not connected

    async with websocket(private.id, creator, origin=settings.FEEDAPP_ALLOWED_ORIGINS[0]) as ws:
        connected, _ = await ws.connect()
        assert connected


@override_settings(SSE_MAX_STREAMS_PER_USER=1)
async def test_websocket_shares_the_stream_limits() -> None:
    user = await make_user()
    poll = await make_poll(user)
    stream = await open_stream(poll.id, user)
    assert stream.status == 200
    try:
        async with websocket(poll.id, user) as ws:
            await ws.connect()
            assert await ws.receive_output(timeout=10) == {"type": "websocket.close", "code": 4429}
    finally:
        await leave(stream)


@pytest.mark.usefixtures("vote_consumer")
async def test_websocket_and_stream_get_the_same_vote() -> None:
    creator, voter = await make_user(), await make_user()
    poll = await make_poll(creator, options=2)
    a, b = poll.option_ids
    stream = await open_stream(poll.id)
    try:
        async with websocket(poll.id) as ws:
            await ws.connect()
            assert (await ws.receive_json_from(timeout=10))["id"] == 0
            assert (await next_event(stream)).id == 0

            submitted = await client_for(voter).post(
                "/api/vote/submit",
                {"poll_id": poll.id, "vote_option_id": b},
                content_type="application/json",
            )
            assert submitted.status_code == 201
            frame = await ws.receive_json_from(timeout=30)
            assert frame == {
                "event": "vote_update",
                "id": 1,
                "data": [
                    {"vote_option_id": a, "vote_count": 0},
                    {"vote_option_id": b, "vote_count": 1},
                ],
            }
            event = await next_event_skipping_keepalives(stream)
            assert (event.id, event.data) == (frame["id"], frame["data"])
    finally:
        await leave(stream)


async def next_event_skipping_keepalives(stream: AsgiStream):
    event = await next_event(stream)
    while event.name == "comment":
        event = await next_event(stream)
    return event
