"""Issue 12, item 3: an open stream keeps only the rights its viewer still has.

A ban, a revoked grant, a poll that became invisible, a logout, the end of all of a
user's sessions or an expired token ends the stream: SSE with `event: access_revoked`,
the WebSocket with close code 4403 (realtime.access, realtime.watch).
"""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import asynccontextmanager

from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import override_settings

from accounts.auth import COOKIE_NAME
from accounts.rows import UserRow
from accounts.services import do_deactivate_user, do_end_all_sessions, do_logout
from accounts.tokens import issue_token, read_token
from db.pool import connection
from feedapp.asgi import application
from realtime.access import get_access_checks
from realtime.hub import Update, get_hub
from tests.asgi_client import AsgiStream
from tests.polls import grant, make_poll
from tests.sse_client import Event, parse_event
from tests.users import make_user

# Short enough for a test to wait, long enough not to race the stream's start.
RECHECK = 0.5


async def open_stream(poll_id: int, token: str | None = None) -> AsgiStream:
    headers = [(b"cookie", f"{COOKIE_NAME}={token}".encode())] if token else []
    stream = await AsgiStream(f"/api/vote/stream/{poll_id}", headers=headers).open()
    assert stream.status == 200
    return stream


async def events_until_end(stream: AsgiStream, within: float = 15) -> list[Event]:
    """Every event (keepalives left out) until the server ends the stream."""
    events = []
    deadline = time.monotonic() + within
    while not stream.finished and time.monotonic() < deadline:
        chunk = await stream.chunk(within=max(0.1, deadline - time.monotonic()))
        for block in chunk.decode().split("\n\n"):
            if block.strip():
                event = parse_event(block)
                if event.name != "comment":
                    events.append(event)
    assert stream.finished, "the stream did not end"
    return events


async def first_event(stream: AsgiStream) -> Event:
    event = parse_event((await stream.chunk()).decode().removesuffix("\n\n"))
    assert event.name == "vote_update"
    return event


async def private_poll_watched_by() -> tuple[UserRow, int, str]:
    creator, viewer = await make_user(), await make_user()
    poll = await make_poll(creator, options=2, perms="private")
    await grant(viewer, poll, "viewer")
    return viewer, poll.id, issue_token(viewer.id)


@override_settings(STREAM_RECHECK_SECONDS=RECHECK)
async def test_a_ban_ends_the_stream_with_access_revoked() -> None:
    viewer, poll_id, token = await private_poll_watched_by()
    stream = await open_stream(poll_id, token)
    try:
        await first_event(stream)
        await do_deactivate_user(viewer.id)
        events = await events_until_end(stream)
        assert [event.name for event in events] == ["access_revoked"]
        assert events[0].data == {}
    finally:
        await stream.disconnect()


@override_settings(STREAM_RECHECK_SECONDS=RECHECK)
async def test_a_revoked_grant_ends_the_stream() -> None:
    viewer, poll_id, token = await private_poll_watched_by()
    stream = await open_stream(poll_id, token)
    try:
        await first_event(stream)
        async with connection() as conn:
            await conn.execute(
                "UPDATE poll_grant SET expires_at = now() WHERE user_id = %s AND poll_id = %s",
                (viewer.id, poll_id),
            )
        assert [event.name for event in await events_until_end(stream)] == ["access_revoked"]
    finally:
        await stream.disconnect()


@override_settings(STREAM_RECHECK_SECONDS=RECHECK)
async def test_a_poll_that_became_invisible_ends_anonymous_streams() -> None:
    poll = await make_poll(await make_user(), options=2, perms="public_view")
    stream = await open_stream(poll.id)
    try:
        await first_event(stream)
        async with connection() as conn:
            await conn.execute(
                "UPDATE poll_grant SET expires_at = now() WHERE user_id IS NULL AND poll_id = %s",
                (poll.id,),
            )
        assert [event.name for event in await events_until_end(stream)] == ["access_revoked"]
    finally:
        await stream.disconnect()


@override_settings(STREAM_RECHECK_SECONDS=RECHECK)
async def test_logging_out_ends_the_sessions_streams() -> None:
    viewer, poll_id, token = await private_poll_watched_by()
    other_session = issue_token(viewer.id)
    stream = await open_stream(poll_id, token)
    other = await open_stream(poll_id, other_session)
    try:
        await first_event(stream)
        await first_event(other)
        claims = read_token(token)
        assert claims is not None
        await do_logout(claims)
        assert [event.name for event in await events_until_end(stream)] == ["access_revoked"]
        assert not other.finished  # another session of the same user goes on
        await do_end_all_sessions(viewer.id)
        assert [event.name for event in await events_until_end(other)] == ["access_revoked"]
    finally:
        await stream.disconnect()
        await other.disconnect()


async def test_a_stream_never_outlives_its_token() -> None:
    viewer, poll_id, _ = await private_poll_watched_by()
    # Issued so that it expires two seconds from now; no periodic check comes before.
    token = issue_token(viewer.id, now=time.time() - settings.JWT_TTL_SECONDS + 2)
    with override_settings(STREAM_RECHECK_SECONDS=600):
        stream = await open_stream(poll_id, token)
        try:
            await first_event(stream)
            assert [event.name for event in await events_until_end(stream)] == ["access_revoked"]
        finally:
            await stream.disconnect()


async def test_an_update_after_the_user_cache_expired_is_checked_first() -> None:
    viewer, poll_id, token = await private_poll_watched_by()
    with override_settings(STREAM_RECHECK_SECONDS=600, AUTH_USER_CACHE_SECONDS=0.2):
        stream = await open_stream(poll_id, token)
        try:
            first = await first_event(stream)
            assert first.id is not None
            await asyncio.sleep(0.3)
            hub = get_hub()
            hub.deliver(poll_id, Update(first.id + 1, json.dumps(first.data)))
            event = parse_event((await stream.chunk()).decode().removesuffix("\n\n"))
            assert (event.name, event.id) == ("vote_update", first.id + 1)

            async with connection() as conn:  # a ban made by another process
                await conn.execute(
                    'UPDATE "user" SET is_active = false WHERE id = %s', (viewer.id,)
                )
            await asyncio.sleep(0.3)
            hub.deliver(poll_id, Update(first.id + 2, json.dumps(first.data)))
            assert [event.name for event in await events_until_end(stream, within=5)] == [
                "access_revoked"
            ]
        finally:
            await stream.disconnect()


@asynccontextmanager
async def websocket(poll_id: int, token: str):
    headers = [(b"cookie", f"{COOKIE_NAME}={token}".encode())]
    communicator = WebsocketCommunicator(application, f"/ws/poll/{poll_id}", headers=headers)
    try:
        yield communicator
    finally:
        await communicator.disconnect()


@override_settings(STREAM_RECHECK_SECONDS=RECHECK)
async def test_a_ban_closes_the_websocket_with_4403() -> None:
    viewer, poll_id, token = await private_poll_watched_by()
    async with websocket(poll_id, token) as ws:
        connected, _ = await ws.connect()
        assert connected
        assert (await ws.receive_json_from(timeout=10))["event"] == "vote_update"
        await do_deactivate_user(viewer.id)
        frames = []
        output = await ws.receive_output(timeout=10)
        while output["type"] == "websocket.send":
            frames.append(json.loads(output["text"]))
            output = await ws.receive_output(timeout=10)
        assert frames[-1] == {"event": "access_revoked"}
        assert output == {"type": "websocket.close", "code": 4403}


async def test_questions_about_one_poll_share_one_query() -> None:
    creator = await make_user()
    poll = await make_poll(creator, options=2, perms="private")
    allowed, banned = await make_user(), await make_user()
    for user in (allowed, banned):
        await grant(user, poll, "viewer")
    await do_deactivate_user(banned.id)
    checks = get_access_checks()

    def key(user: UserRow) -> tuple[int, str, int]:
        claims = read_token(issue_token(user.id))
        assert claims is not None
        return (claims.user_id, claims.session_id, 0)

    before = checks.queries_made
    questions = [key(allowed) for _ in range(20)] + [key(banned) for _ in range(20)]
    answers = await asyncio.gather(
        *(checks.ask(poll.id, question) for question in questions), checks.ask(poll.id, None)
    )
    assert checks.queries_made == before + 1
    assert answers == [True] * 20 + [False] * 20 + [False]  # anonymous: private poll
