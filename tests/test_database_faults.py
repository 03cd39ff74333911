"""PostgreSQL going away under the web side: 503 with Retry-After, never 500; a broken
pooled connection replaced or the read retried once; one warning per outage."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from django.test import override_settings

from db.pool import connection, run_read
from db.sql import fetch_value
from stack import faults
from stack.profiles import get_profile
from tests.asgi_client import AsgiStream
from tests.polls import make_poll
from tests.sse_client import parse_event
from tests.users import client_for, make_user
from tests.waiting import eventually
from votes.counts import store_counts
from votes.rows import PollCounts

PROFILE = get_profile("test")


async def _kill_other_sessions() -> int:
    """Terminate every other session of this database, as a restart would."""
    async with connection() as conn:
        return int(
            await fetch_value(
                conn,
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()",
                None,
            )
        )


async def test_connections_the_server_closed_are_not_handed_out() -> None:
    poll = await make_poll(await make_user())
    client = client_for(None)
    # Several pooled connections, then all of them closed by the server while idle.
    responses = await asyncio.gather(*(client.get(f"/api/poll/{poll.id}") for _ in range(6)))
    assert {response.status_code for response in responses} == {200}
    assert await _kill_other_sessions() >= 1
    await asyncio.sleep(0.2)  # the termination notices reach the sockets
    responses = await asyncio.gather(*(client.get(f"/api/poll/{poll.id}") for _ in range(6)))
    assert [response.status_code for response in responses] == [200] * 6


async def test_a_read_whose_connection_breaks_is_retried_once_on_a_fresh_one() -> None:
    attempts: list[int] = []

    async def read(conn) -> int:
        attempts.append(int(await fetch_value(conn, "SELECT pg_backend_pid()", None)))
        if len(attempts) == 1:
            await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        return int(await fetch_value(conn, "SELECT 42", None))

    assert await run_read(read) == 42
    assert len(attempts) == 2 and attempts[0] != attempts[1]


@pytest.mark.stack_control
async def test_postgres_down_answers_503_with_retry_after_and_warns_once(caplog) -> None:
    creator, voter = await make_user(), await make_user()
    poll = await make_poll(creator)
    anonymous, signed_in = client_for(None), client_for(voter)
    assert (await anonymous.get(f"/api/poll/{poll.id}")).status_code == 200
    vote = {"poll_id": poll.id, "vote_option_id": poll.option_ids[0]}
    caplog.set_level(logging.INFO)

    with faults.stopped("postgres", PROFILE):
        caplog.clear()
        requests = [
            anonymous.get(f"/api/poll/{poll.id}"),
            anonymous.get(f"/api/vote/{poll.id}"),
            anonymous.get("/api/poll/all"),
            signed_in.post("/api/vote/submit", vote, content_type="application/json"),
            signed_in.post(
                "/api/poll/create",
                {"question": "Down?", "options": ["yes", "no"]},
                content_type="application/json",
            ),
        ] * 3
        responses = await asyncio.gather(*requests)
        assert [response.status_code for response in responses] == [503] * len(requests)
        for response in responses:
            assert int(response["Retry-After"]) >= 1
            assert isinstance(response.json()["detail"], str)
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        ours = [r for r in warnings if r.name == "db.pool"]
        assert len(ours) == 1, [r.getMessage() for r in ours]
        assert not [r for r in warnings if r.exc_info or r.levelno >= logging.ERROR]
        # The vote was refused before it was produced: Kafka has nothing to apply later.

    async def poll_status() -> int:
        return (await anonymous.get(f"/api/poll/{poll.id}")).status_code

    assert await eventually(poll_status, 200, within=30) == 200
    back = [r for r in caplog.records if r.name == "db.pool" and "again" in r.getMessage()]
    assert len(back) == 1
    response = await signed_in.post("/api/vote/submit", vote, content_type="application/json")
    assert response.status_code == 201


@pytest.mark.stack_control
@override_settings(STREAM_RECHECK_SECONDS=0.5)
async def test_a_stream_whose_access_checks_fall_in_an_outage_delivers_after_it(
    valkey_client,
) -> None:
    """The stream's periodic access check meets PostgreSQL down (503 territory): it asks
    again later, and the next update still reaches the stream. (An outage used to leave
    the check's answer unset, and the stream silent for good.)"""
    poll = await make_poll(await make_user(), options=2)
    stream = await AsgiStream(f"/api/vote/stream/{poll.id}").open()
    assert stream.status == 200
    try:
        first = parse_event((await stream.chunk()).decode().removesuffix("\n\n"))
        assert first.name == "vote_update"
        with faults.stopped("postgres", PROFILE):
            await asyncio.sleep(3)  # a few checks fail meanwhile
        newer = PollCounts(poll.id, (first.id or 0) + 1, poll.option_ids, [1, 0])
        store_counts(valkey_client, [newer])  # what the consumer does after a commit

        seen: list[int] = []
        deadline = time.monotonic() + 15
        while newer.version not in seen and time.monotonic() < deadline:
            try:
                chunk = await stream.chunk(within=deadline - time.monotonic())
            except TimeoutError:
                break
            blocks = [block for block in chunk.decode().split("\n\n") if block.strip()]
            seen += [event.id for event in map(parse_event, blocks) if event.id is not None]
        assert newer.version in seen, seen
    finally:
        await stream.disconnect()
