"""The consumer against the faults of issue 11: polls deleted under its batches, a
rebalance during a PostgreSQL outage, a database not ready at start-up."""

from __future__ import annotations

import asyncio
import itertools
import random
import re
import signal
import time
import uuid
from collections import Counter
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from kafka import KafkaProducer
from kafka.admin import NewPartitions

from db.migrate import dbmate
from stack import faults
from stack.profiles import get_profile
from tests.calls import CallCounter
from tests.consumers import consumer_thread, start_consumer_process
from tests.polls import SamplePoll, db_counts, db_votes, make_poll
from tests.test_consumer import expected_state, random_events, stored_offset_total
from tests.users import client_for, make_user
from tests.waiting import eventually
from votes import broker
from votes.broker import VoteConsumer
from votes.messages import VoteEvent
from votes.runner import RunnerConfig, make_consumer

PROFILE = get_profile("test")


def send_all(producer: KafkaProducer, topic: str, events: list[VoteEvent]) -> None:
    for event in events:
        producer.send(topic, key=event.key(), value=event.encode())
    producer.flush(timeout=30)


def expected_votes(events: list[VoteEvent], poll_ids: set[int]) -> dict[int, dict[int, int]]:
    votes: dict[int, dict[int, int]] = {poll_id: {} for poll_id in poll_ids}
    for event in events:
        if event.poll_id in poll_ids:
            votes[event.poll_id][event.user_id] = event.vote_option_id
    return votes


async def test_polls_deleted_while_their_votes_are_applied(
    kafka_topic, kafka_producer, valkey_client
) -> None:
    """apply_votes and delete_poll take the poll row first, both: no deadlock, no 500; and
    no counts of a deleted poll come back to the cache."""
    creator = await make_user()
    polls = [await make_poll(creator, options=3) for _ in range(40)]
    voters = [await make_user("voter") for _ in range(60)]
    rng = random.Random(3)
    events: list[VoteEvent] = []
    owner = client_for(creator)
    statuses: Counter[int] = Counter()
    doomed = polls[::2]
    with consumer_thread(kafka_topic, f"test-group-{uuid.uuid4().hex[:8]}", batch_size=1000):

        async def produce() -> None:
            for _ in range(30):
                burst = [
                    VoteEvent.new(rng.choice(voters).id, poll.id, rng.choice(poll.option_ids))
                    for poll in (rng.choice(polls) for _ in range(400))
                ]
                events.extend(burst)
                await asyncio.to_thread(send_all, kafka_producer, kafka_topic, burst)
                await asyncio.sleep(0.02)

        async def delete(poll: SamplePoll) -> None:
            statuses[(await owner.delete(f"/api/poll/{poll.id}")).status_code] += 1

        async def delete_all() -> None:
            await asyncio.sleep(0.3)
            for n in range(0, len(doomed), 4):
                await asyncio.gather(*(delete(poll) for poll in doomed[n : n + 4]))
                await asyncio.sleep(0.02)

        await asyncio.gather(produce(), delete_all())
        assert statuses == {204: len(doomed)}
        survivors = {poll.id for poll in polls} - {poll.id for poll in doomed}
        expected = expected_votes(events, survivors)

        async def applied() -> bool:
            return all([await db_votes(poll_id) == expected[poll_id] for poll_id in survivors])

        assert await eventually(applied, True, within=60)
    for poll in polls:
        if poll.id in survivors:
            tally = Counter(expected[poll.id].values())
            assert await db_counts(poll.id) == {o: tally.get(o, 0) for o in poll.option_ids}
        else:
            assert await db_votes(poll.id) == {}
            assert valkey_client.hget(f"counts:poll:{poll.id}", "counts") is None


def assigned_partitions(log: Path) -> list[int] | None:
    """The partitions a consumer process held after its last rebalance."""
    lines = [line for line in log.read_text().splitlines() if "; now holding [" in line]
    if not lines:
        return None
    return sorted(int(p) for p in re.findall(r"\d+", lines[-1].rsplit("[", 1)[1]))


@pytest.mark.stack_control
@pytest.mark.parametrize("service", ["postgres", "valkey"])
async def test_a_rebalance_during_an_outage_loses_nothing(
    service: str, kafka_topic, kafka_producer, tmp_path
) -> None:
    """Two consumers; PostgreSQL (or Valkey) stops; one consumer is stopped (SIGTERM), so
    the other is given its partitions while it waits paused; the service starts: every
    vote is applied exactly once. A partition assigned during such a wait used to be
    fetched and its records dropped (seen with Valkey: the rebalance then completes)."""
    polls, events = await random_events(900, polls=6, users=50, seed=11)
    group = f"test-group-{uuid.uuid4().hex[:8]}"
    logs = {name: tmp_path / f"{name}.log" for name in ("a", "b")}
    procs = {name: start_consumer_process(kafka_topic, group, log) for name, log in logs.items()}
    try:

        async def both_assigned() -> bool:
            held = [assigned_partitions(log) or [] for log in logs.values()]
            return all(held) and sorted(itertools.chain(*held)) == [0, 1, 2]

        assert await eventually(both_assigned, True, within=60)
        send_all(kafka_producer, kafka_topic, events[:300])
        assert await eventually(lambda: stored_offset_total(group, kafka_topic), 300) == 300
        with faults.stopped(service, PROFILE):
            send_all(kafka_producer, kafka_topic, events[300:])
            await asyncio.sleep(1)  # both fetched records they cannot apply: paused
            procs["a"].send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(procs["a"].wait, 30) == 0
            # a left the group: b is given a's partitions and keeps polling, paused.
            await asyncio.sleep(15)
        total = len(events)
        assert await eventually(lambda: stored_offset_total(group, kafka_topic), total, 60) == (
            total
        )
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
    counts, votes = expected_state(events, polls)
    assert await snapshot_counts_votes(polls) == (counts, votes)


async def snapshot_counts_votes(polls: list[SamplePoll]):
    return (
        {poll.id: await db_counts(poll.id) for poll in polls},
        {poll.id: await db_votes(poll.id) for poll in polls},
    )


async def test_a_consumer_started_before_the_migrations_waits_for_them(
    kafka_topic, kafka_producer, tmp_path
) -> None:
    """It says so once, joins no group meanwhile, and consumes once the schema is there."""
    url = settings.DATABASE_URL.rsplit("/", 1)[0] + f"/feedapp_unmigrated_{uuid.uuid4().hex[:8]}"
    dbmate(url, "create")
    log = tmp_path / "consumer.log"
    group = f"test-group-{uuid.uuid4().hex[:8]}"
    proc = start_consumer_process(kafka_topic, group, log, env={"DATABASE_URL": url})
    try:

        async def waiting() -> bool:
            return "waiting for the database: its schema is missing" in log.read_text()

        assert await eventually(waiting, True, within=60)
        await asyncio.sleep(2)
        assert "partitions assigned" not in log.read_text()
        await asyncio.to_thread(dbmate, url, "up")

        async def consuming() -> bool:
            return "now holding [0, 1, 2]" in log.read_text()

        assert await eventually(consuming, True, within=60)
        # Records for unknown polls are applied as "gone": the offsets move.
        send_all(kafka_producer, kafka_topic, [VoteEvent.new(1, 1, 1) for _ in range(30)])

        async def stored() -> int:
            with psycopg.connect(url) as conn:
                row = conn.execute(
                    "SELECT coalesce(sum(last_offset + 1), 0) FROM consumer_offset "
                    "WHERE consumer_group = %s",
                    (group,),
                ).fetchone()
            return int(row[0]) if row else 0

        assert await eventually(stored, 30, within=60) == 30
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0
        await asyncio.to_thread(dbmate, url, "drop")
    text = log.read_text()
    assert text.count("waiting for the database") == 1
    assert "the database is ready" in text
    assert "Traceback" not in text


@pytest.mark.stack_control
def test_the_consumer_waits_for_a_frozen_broker_without_spinning(kafka_topic) -> None:
    """While the group's coordinator is frozen its heartbeat stays unanswered, and
    kafka-python 3.0.12's poll went round without waiting (thousands of rounds a second,
    a core's worth of CPU taken from the web processes beside it)."""
    config = RunnerConfig(
        list(settings.KAFKA_BOOTSTRAP_SERVERS), kafka_topic, f"g-{uuid.uuid4().hex[:8]}"
    )
    consumer = make_consumer(config)
    rounds = CallCounter(consumer, "_poll_once")
    try:
        consumer.subscribe([kafka_topic])
        deadline = time.monotonic() + 30
        while not consumer.assignment() and time.monotonic() < deadline:
            consumer.poll(timeout_ms=200)
        assert consumer.assignment(), "no partitions assigned"
        with faults.frozen("kafka", PROFILE):
            before = rounds.calls
            # Within the session timeout (10 s); heartbeats are due every second.
            consumer.poll(timeout_ms=int(FROZEN_WATCH * 1000))
            polled = rounds.calls - before
    finally:
        consumer.close(autocommit=False)
    # Waiting, a round ends when a pause of SPIN_PAUSE_SECONDS (10 ms) or a wait does.
    assert polled < 2 * FROZEN_WATCH / VoteConsumer.SPIN_PAUSE_SECONDS, (
        f"poll went round {polled} times in {FROZEN_WATCH} s"
    )


FROZEN_WATCH = 3.0


def test_a_rebalance_that_ends_between_polls_is_not_lost(kafka_topic) -> None:
    """kafka-python 3.0.12 dropped a rebalance that finished between two polls when
    nothing asked for a rejoin by then: here the group's only member, its leader, is
    given a partition added to its topic while it polls with a short timeout. Without
    VoteConsumer's rejoin it kept its old partitions, with heartbeats disabled, until
    the broker expelled it."""
    consumer = VoteConsumer(
        bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
        group_id=f"g-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        heartbeat_interval_ms=500,
        # It learns of the new partition from its next metadata refresh.
        metadata_max_age_ms=500,
    )
    try:
        consumer.subscribe([kafka_topic])
        deadline = time.monotonic() + 30
        while len(consumer.assignment()) < 3 and time.monotonic() < deadline:
            consumer.poll(timeout_ms=100)
        assert len(consumer.assignment()) == 3
        for partitions in (4, 5):  # two rebalances: each one could be dropped
            admin = broker.admin_client()
            try:
                admin.create_partitions({kafka_topic: NewPartitions(total_count=partitions)})
            finally:
                admin.close()
            deadline = time.monotonic() + 20
            while len(consumer.assignment()) < partitions and time.monotonic() < deadline:
                consumer.poll(timeout_ms=5)
            assert sorted(tp.partition for tp in consumer.assignment()) == [*range(partitions)]
    finally:
        consumer.close(autocommit=False)
