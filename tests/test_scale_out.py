"""Scale-out on the test stack: two web server processes (uvicorn) and two consumer
processes in one consumer group, on a vote topic of their own.

Votes go through both web processes, streams are open on both; every stream sees every
counts version in order, the final counts are exact, and the per-user stream limit holds
across the two processes.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
import pytest
from kafka.partitioner.default import murmur2

from accounts.auth import COOKIE_NAME
from accounts.tokens import issue_token
from tests.consumers import start_consumer_process, stop_consumer_process
from tests.polls import SamplePoll, db_counts, db_version, make_poll
from tests.servers import Server, start_server
from tests.sse_client import LiveStream
from tests.users import make_user
from tests.waiting import eventually
from votes import broker

PARTITIONS = 4
STREAMS_PER_USER = 3


@dataclass
class Cluster:
    webs: list[Server]
    consumer_logs: list[Path]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    folder = tmp_path_factory.mktemp("scale-out")
    topic = f"test-scale-{uuid.uuid4().hex[:8]}"
    broker.ensure_topic(topic, PARTITIONS, 1)
    env = {"KAFKA_VOTE_TOPIC": topic, "SSE_MAX_STREAMS_PER_USER": str(STREAMS_PER_USER)}
    webs: list[Server] = []
    consumers = []
    logs = [folder / f"consumer-{i}.log" for i in range(2)]
    try:
        for i in range(2):
            webs.append(start_server("uvicorn", folder / f"web-{i}.log", env=env))
        group = f"scale-{uuid.uuid4().hex[:8]}"
        consumers = [start_consumer_process(topic, group, log) for log in logs]
        yield Cluster(webs, logs)
    finally:
        for web in webs:
            web.stop()
        for consumer in consumers:
            stop_consumer_process(consumer)
        broker.delete_topic(topic)


def partition_of(poll_id: int) -> int:
    """Where the producer puts a poll's votes (kafka-python's default partitioner)."""
    return (murmur2(str(poll_id).encode()) & 0x7FFFFFFF) % PARTITIONS


async def polls_on_every_partition() -> list[SamplePoll]:
    """Polls whose votes land on every partition, so both consumers have work."""
    owner = await make_user()
    polls: list[SamplePoll] = []
    while {partition_of(p.id) for p in polls} != set(range(PARTITIONS)):
        poll = await make_poll(owner)
        if partition_of(poll.id) not in {partition_of(p.id) for p in polls}:
            polls.append(poll)
    return polls


async def vote(web: Server, user_id: int, poll_id: int, option_id: int) -> None:
    async with httpx.AsyncClient(cookies={COOKIE_NAME: issue_token(user_id)}) as client:
        response = await client.post(
            f"{web.url}/api/vote/submit",
            json={"poll_id": poll_id, "vote_option_id": option_id},
            timeout=20,
        )
    assert response.status_code == 201, response.text


async def stream(web: Server, poll_id: int, user_id: int) -> LiveStream:
    opened = await LiveStream(
        f"{web.url}/api/vote/stream/{poll_id}", {COOKIE_NAME: issue_token(user_id)}
    ).open()
    return opened


def versions(live: LiveStream) -> list[int]:
    return [event.id for event in live.updates() if event.id is not None]


def has_version(version: int, live: LiveStream) -> bool:
    return version in versions(live)


async def assigned(log: Path) -> bool:
    return "partitions assigned: [" in await asyncio.to_thread(log.read_text, errors="replace")


async def test_two_web_and_two_consumer_processes_scale_out(cluster: Cluster) -> None:
    for log in cluster.consumer_logs:  # both consumers joined the group
        assert await eventually(partial(assigned, log), True, within=90), log.read_text()
    polls = await polls_on_every_partition()
    watched = polls[0]
    viewers = [await make_user() for _ in range(3)]
    streams = [await stream(web, watched.id, v.id) for v in viewers for web in cluster.webs]
    try:
        assert all(s.status == 200 for s in streams)
        assert all([await s.wait_for(lambda s: versions(s)[:1] == [0]) for s in streams])

        # Paced: each vote changes the counts, and every stream (on either process) gets
        # each new version before the next vote.
        for n in range(1, 9):
            voter = await make_user()
            web = cluster.webs[n % 2]
            await vote(web, voter.id, watched.id, watched.option_ids[n % 3])
            assert await eventually(lambda: db_version(watched.id), n) == n
            for s in streams:
                assert await s.wait_for(partial(has_version, n)), (n, versions(s))
        for s in streams:
            assert versions(s) == list(range(9)), "every version, in order, on every stream"

        # A burst through both processes onto every partition: each voter votes three
        # times (in order, each acknowledged before the next); the last vote counts.
        voters = [await make_user() for _ in range(24)]
        expected = {poll.id: dict.fromkeys(poll.option_ids, 0) for poll in polls}
        for poll in polls:
            expected[poll.id] = await db_counts(poll.id)

        async def voter_votes(i: int) -> None:
            poll = polls[i % len(polls)]
            choices = [poll.option_ids[(i + k) % 3] for k in range(3)]
            for k, option in enumerate(choices):
                await vote(cluster.webs[(i + k) % 2], voters[i].id, poll.id, option)
            expected[poll.id][choices[-1]] += 1

        await asyncio.gather(*(voter_votes(i) for i in range(len(voters))))
        for poll in polls:
            counts = await eventually(partial(db_counts, poll.id), expected[poll.id])
            assert counts == expected[poll.id]
        final_version = await db_version(watched.id)
        for s in streams:
            assert await s.wait_for(lambda s: versions(s)[-1] == final_version), versions(s)
            assert versions(s) == sorted(set(versions(s))), "strictly increasing"
            assert s.latest_counts() == expected[watched.id]
            assert not s.ended and s.error is None
    finally:
        for s in streams:
            await s.close()

    # Both consumers applied records (each owns partitions that got votes).
    for log in cluster.consumer_logs:
        text = log.read_text()
        applied = sum(int(n) for n in re.findall(r"applied (\d+) records", text))
        assert applied > 0, text[-2000:]


async def test_the_per_user_stream_limit_holds_across_processes(cluster: Cluster) -> None:
    owner, viewer = await make_user(), await make_user()
    poll = await make_poll(owner)
    first, second = cluster.webs
    opened = [
        await stream(first, poll.id, viewer.id),
        await stream(second, poll.id, viewer.id),
        await stream(first, poll.id, viewer.id),
    ]
    try:
        assert [s.status for s in opened] == [200] * STREAMS_PER_USER
        for web in (first, second):
            refused = await stream(web, poll.id, viewer.id)
            assert refused.status == 429
            await refused.close()
        # One ends on the first process: the second may open one again.
        await opened.pop(0).close()

        async def reopened() -> int:
            attempt = await stream(second, poll.id, viewer.id)
            if attempt.status != 200:
                await attempt.close()
            else:
                opened.append(attempt)
            return attempt.status or 0

        assert await eventually(reopened, 200) == 200
    finally:
        for s in opened:
            await s.close()
