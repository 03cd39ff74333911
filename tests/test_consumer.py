"""The vote consumer's guarantees, against the real broker, database and Valkey."""

from __future__ import annotations

import asyncio
import json
import random
import re
import signal
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from kafka import KafkaConsumer, TopicPartition
from kafka.partitioner.default import murmur2
from kafka.structs import OffsetAndMetadata

from db.pool import close_async_pool, close_sync_pool, connection, sync_connection
from db.sync_bridge import run_sync
from stack import postgres as postgres_service
from stack import valkey as valkey_service
from stack.profiles import get_profile
from tests.consumers import consumer_thread, start_consumer_process, stop_consumer_process
from tests.polls import SamplePoll, db_counts, db_version, db_votes, make_poll
from tests.users import make_user
from tests.waiting import eventually
from votes import broker
from votes.apply import StoredRecord, apply_batches
from votes.messages import VoteEvent


def produce(producer, topic: str, events: list[VoteEvent | bytes]) -> None:
    for event in events:
        if isinstance(event, VoteEvent):
            producer.send(topic, key=event.key(), value=event.encode())
        else:
            producer.send(topic, key=b"1", value=event)
    producer.flush(timeout=30)


def expected_state(events: list[VoteEvent], polls: list[SamplePoll]):
    """Counts and votes after applying `events` one by one, in order."""
    votes: dict[int, dict[int, int]] = {poll.id: {} for poll in polls}
    for event in events:
        votes[event.poll_id][event.user_id] = event.vote_option_id
    counts = {}
    for poll in polls:
        tally = Counter(votes[poll.id].values())
        counts[poll.id] = {option: tally.get(option, 0) for option in poll.option_ids}
    return counts, votes


async def snapshot(polls: list[SamplePoll]):
    return (
        {poll.id: await db_counts(poll.id) for poll in polls},
        {poll.id: await db_votes(poll.id) for poll in polls},
        {poll.id: await db_version(poll.id) for poll in polls},
    )


async def random_events(
    count: int,
    polls: int = 3,
    users: int = 40,
    seed: int = 1,
    made_polls: list[SamplePoll] | None = None,
):
    creator = await make_user()
    made_polls = made_polls or [await make_poll(creator, options=3) for _ in range(polls)]
    made_users = [await make_user("voter") for _ in range(users)]
    rng = random.Random(seed)
    events = []
    for _ in range(count):
        poll = rng.choice(made_polls)
        events.append(
            VoteEvent.new(rng.choice(made_users).id, poll.id, rng.choice(poll.option_ids))
        )
    return made_polls, events


async def stored_offset_total(group: str, topic: str) -> int:
    async with connection() as conn:
        cur = await conn.execute(
            "SELECT coalesce(sum(last_offset + 1), 0) FROM consumer_offset "
            "WHERE consumer_group = %s AND topic = %s",
            (group, topic),
        )
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])


async def test_replaying_a_batch_changes_nothing(kafka_topic) -> None:
    polls, events = await random_events(200)
    records = [StoredRecord(offset, event.encode()) for offset, event in enumerate(events)]
    with sync_connection() as conn:
        first = apply_batches(conn, "replay", kafka_topic, {0: records})
    before = await snapshot(polls)
    with sync_connection() as conn:
        again = apply_batches(conn, "replay", kafka_topic, {0: records})
        partly = apply_batches(conn, "replay", kafka_topic, {0: records[100:150]})
    assert first.fresh == 200
    assert again.fresh == 0 and partly.fresh == 0
    assert await snapshot(polls) == before
    counts, votes = expected_state(events, polls)
    assert before[0] == counts and before[1] == votes


async def test_batch_equals_one_by_one(kafka_topic) -> None:
    polls, events = await random_events(300, polls=2, users=10, seed=2)
    with sync_connection() as conn:
        for offset, event in enumerate(events):
            apply_batches(conn, "single", kafka_topic, {0: [StoredRecord(offset, event.encode())]})
    single = await snapshot(polls)
    counts, votes = expected_state(events, polls)
    assert single[0] == counts and single[1] == votes

    # The same events again, for fresh polls, in one batch.
    polls2, events2 = await random_events(300, polls=2, users=10, seed=2)
    with sync_connection() as conn:
        apply_batches(
            conn,
            "batch",
            kafka_topic,
            {1: [StoredRecord(offset, e.encode()) for offset, e in enumerate(events2)]},
        )
    counts2, votes2 = expected_state(events2, polls2)
    batch = await snapshot(polls2)
    assert batch[0] == counts2 and batch[1] == votes2


async def test_poison_and_gone_polls_are_skipped_and_counted(kafka_topic) -> None:
    polls, events = await random_events(4, polls=2, users=4, seed=3)
    gone = await make_poll(await make_user())
    async with connection() as conn:
        await conn.execute("DELETE FROM poll WHERE id = %s", (gone.id,))
    values: list[bytes | None] = [
        events[0].encode(),
        b"not json",
        b'{"poll_id": 1}',
        None,
        VoteEvent.new(events[0].user_id, gone.id, gone.option_ids[0]).encode(),
        b'{"event_id": "x", "user_id": 1, "poll_id": 1, "vote_option_id": 1, "submitted_at": 1}',
        *(event.encode() for event in events[1:]),
    ]
    with sync_connection() as conn:
        outcome = apply_batches(
            conn,
            "poison",
            kafka_topic,
            {0: [StoredRecord(offset, value) for offset, value in enumerate(values)]},
        )
    assert (outcome.poison, outcome.gone, outcome.fresh) == (4, 1, len(values))
    counts, votes = expected_state(events, polls)
    assert (await snapshot(polls))[:2] == (counts, votes)


async def test_consumer_keeps_running_past_poison(kafka_topic, kafka_producer) -> None:
    polls, events = await random_events(20, polls=1, users=5, seed=4)
    produce(kafka_producer, kafka_topic, [*events[:10]])
    # Poison on the poll's own partition, between good records.
    kafka_producer.send(kafka_topic, key=events[0].key(), value=b"\xff garbage")
    produce(kafka_producer, kafka_topic, events[10:])
    group = f"g-{uuid.uuid4().hex[:8]}"
    with consumer_thread(kafka_topic, group, batch_size=7):
        counts, votes = expected_state(events, polls)
        assert (
            await eventually(lambda: db_counts(polls[0].id), counts[polls[0].id])
            == counts[polls[0].id]
        )
        assert await eventually(lambda: stored_offset_total(group, kafka_topic), 21) == 21
    assert await db_votes(polls[0].id) == votes[polls[0].id]


async def test_kafka_offsets_catch_up_with_the_applied_ones_while_idle(
    kafka_topic, kafka_producer
) -> None:
    """Kafka's committed offsets (lag monitoring) are committed at most once a second, so
    the batches after a commit wait for the next one: it comes even with no more votes."""
    _, events = await random_events(40, polls=4, users=10, seed=12)
    group = f"g-{uuid.uuid4().hex[:8]}"
    with consumer_thread(kafka_topic, group, batch_size=50):
        produce(kafka_producer, kafka_topic, events[:20])
        assert await eventually(lambda: stored_offset_total(group, kafka_topic), 20) == 20
        # Applied within the second after the first commit: not due at once.
        produce(kafka_producer, kafka_topic, events[20:])
        assert await eventually(lambda: stored_offset_total(group, kafka_topic), 40) == 40

        async def committed() -> int:
            return await asyncio.to_thread(kafka_committed_total, group, kafka_topic)

        assert await eventually(committed, 40, within=10) == 40


async def test_assigned_partitions_and_a_stop_do_not_wait_for_the_poll_timeout(
    kafka_topic, kafka_producer
) -> None:
    """A rebalance happens inside a poll, and the runner seeks newly assigned partitions
    between polls: the poll that was given them returns at once, and so does the poll
    under way when the consumer is told to stop. With a minute's poll timeout, either
    would otherwise take that minute."""
    polls, events = await random_events(30, polls=3, users=10, seed=13)
    produce(kafka_producer, kafka_topic, events)
    group = f"g-{uuid.uuid4().hex[:8]}"
    with consumer_thread(kafka_topic, group, batch_size=50, poll_timeout_ms=60_000) as stop:
        assert await eventually(lambda: stored_offset_total(group, kafka_topic), 30) == 30
        counts, _ = expected_state(events, polls)
        assert {poll.id: await db_counts(poll.id) for poll in polls} == counts
        stop.set()
        # consumer_thread's exit asserts the runner stopped within its 30 s join.


def kafka_committed_total(group: str, topic: str) -> int:
    reader = KafkaConsumer(
        bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, group_id=group, enable_auto_commit=False
    )
    try:
        partitions = [TopicPartition(topic, p) for p in reader.partitions_for_topic(topic)]
        return sum(reader.committed(tp) or 0 for tp in partitions)
    finally:
        reader.close()


async def test_reset_group_to_earliest_changes_nothing(kafka_topic, kafka_producer) -> None:
    polls, events = await random_events(300, seed=5)
    produce(kafka_producer, kafka_topic, events)
    group = f"g-{uuid.uuid4().hex[:8]}"
    with consumer_thread(kafka_topic, group, batch_size=50):
        await eventually(lambda: stored_offset_total(group, kafka_topic), 300)
    before = await snapshot(polls)
    counts, votes = expected_state(events, polls)
    assert before[0] == counts and before[1] == votes

    reset = KafkaConsumer(
        bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, group_id=group, enable_auto_commit=False
    )
    partitions = [TopicPartition(kafka_topic, p) for p in reset.partitions_for_topic(kafka_topic)]
    reset.assign(partitions)
    reset.commit({tp: OffsetAndMetadata(0, "", -1) for tp in partitions})
    reset.close()

    marker = VoteEvent.new(events[0].user_id, polls[0].id, polls[0].option_ids[0])
    produce(kafka_producer, kafka_topic, [marker])
    with consumer_thread(kafka_topic, group, batch_size=50):
        await eventually(lambda: stored_offset_total(group, kafka_topic), 301)
        await asyncio.sleep(1)
    counts, votes = expected_state([*events, marker], polls)
    after = await snapshot(polls)
    assert after[0] == counts and after[1] == votes
    # Only the marker's poll may have moved on, and by one version at most.
    assert {p: v for p, v in after[2].items() if p != polls[0].id} == {
        p: v for p, v in before[2].items() if p != polls[0].id
    }
    assert after[2][polls[0].id] - before[2][polls[0].id] in (0, 1)


async def test_consumer_killed_mid_stream_loses_and_doubles_nothing(
    kafka_topic, kafka_producer, tmp_path
) -> None:
    polls, events = await random_events(3000, seed=6)
    produce(kafka_producer, kafka_topic, events)
    group = f"g-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "consumer.log"
    proc = start_consumer_process(kafka_topic, group, log, batch_size=20)
    try:
        progress = 0
        for _ in range(600):
            progress = await stored_offset_total(group, kafka_topic)
            if progress >= 300:
                break
            await asyncio.sleep(0.05)
        assert 0 < progress < 3000, f"no kill in the middle (progress {progress})"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    proc = start_consumer_process(kafka_topic, group, log, batch_size=200)
    try:
        assert (
            await eventually(lambda: stored_offset_total(group, kafka_topic), 3000, within=120)
            == 3000
        )
    finally:
        assert stop_consumer_process(proc) == 0, log.read_text()[-3000:]
    counts, votes = expected_state(events, polls)
    state = await snapshot(polls)
    assert state[0] == counts and state[1] == votes


async def test_two_consumer_processes_split_partitions(
    kafka_topic, kafka_producer, tmp_path
) -> None:
    group = f"g-{uuid.uuid4().hex[:8]}"
    logs = [tmp_path / "one.log", tmp_path / "two.log"]
    procs = [start_consumer_process(kafka_topic, group, log, batch_size=50) for log in logs]
    try:

        async def split() -> bool:
            assigned = [_last_assignment(log.read_text()) for log in logs]
            return all(assigned) and sorted(assigned[0] + assigned[1]) == [0, 1, 2]

        assert await eventually(split, True, within=60), [log.read_text() for log in logs]
        polls, events = await random_events(1500, seed=7, made_polls=await _polls_on_partitions(3))
        produce(kafka_producer, kafka_topic, events)
        assert (
            await eventually(lambda: stored_offset_total(group, kafka_topic), 1500, within=120)
            == 1500
        )
    finally:
        codes = [stop_consumer_process(proc) for proc in procs]
    assert codes == [0, 0]
    handled = [_records_handled(log.read_text()) for log in logs]
    assert all(handled) and sum(handled) >= 1500, handled
    counts, votes = expected_state(events, polls)
    state = await snapshot(polls)
    assert state[0] == counts and state[1] == votes


async def test_a_revocation_waits_for_the_batch_in_flight(
    kafka_topic, kafka_producer, tmp_path
) -> None:
    """The worker thread applies a batch while the runner polls on; a rebalance that
    revokes partitions meanwhile returns only once that batch is committed, and every
    vote is applied once."""
    polls = await _polls_on_partitions(3)
    polls, events = await random_events(300, seed=9, made_polls=polls)
    group = f"g-{uuid.uuid4().hex[:8]}"
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    procs = []
    try:
        # The test holds every poll row, so the first consumer's batch (all 300 events,
        # one poll) stays in flight at lock_polls until the test lets it go.
        async with await psycopg.AsyncConnection.connect(settings.DATABASE_URL) as blocker:
            await blocker.execute(
                "SELECT id FROM poll WHERE id = ANY(%s) FOR UPDATE", ([p.id for p in polls],)
            )
            produce(kafka_producer, kafka_topic, events)
            procs.append(start_consumer_process(kafka_topic, group, logs[0], batch_size=500))
            assert await eventually(_waiting_for_poll_locks, True, within=60)
            procs.append(start_consumer_process(kafka_topic, group, logs[1], batch_size=500))
            # Both members in the group and the assignment handed out: the first consumer's
            # revocation callback is under way, waiting for the batch.
            stable = await eventually(
                lambda: asyncio.to_thread(_group_stable_with, group, 2), True, within=60
            )
            assert stable
            await asyncio.sleep(3)  # over kafka-python's 1 s warning for slow listeners
            assert "partitions revoked" not in logs[0].read_text()
            released = datetime.now()
            await blocker.rollback()
        assert await _all_stored(group, kafka_topic, 300)
        await eventually(lambda: _both_hold_partitions(logs), True, within=60)
        _, more_events = await random_events(300, seed=10, made_polls=polls)
        produce(kafka_producer, kafka_topic, more_events)
        assert await _all_stored(group, kafka_topic, 600)
    finally:
        codes = [stop_consumer_process(proc) for proc in procs]
    first = logs[0].read_text()
    assert codes == [0, 0], first
    revoked_at = [_logged_at(line) for line in first.splitlines() if "partitions revoked" in line]
    assert revoked_at and revoked_at[0] >= released, first
    assert re.search(r"on_partitions_revoked for group \S+ took", first), first
    assert _records_handled(logs[1].read_text()) > 0
    counts, votes = expected_state(events + more_events, polls)
    state = await snapshot(polls)
    assert state[0] == counts and state[1] == votes


async def _all_stored(group: str, topic: str, records: int) -> bool:
    """Whether the group's stored offsets come to `records` within two minutes."""
    stored = await eventually(lambda: stored_offset_total(group, topic), records, within=120)
    return stored == records


async def _waiting_for_poll_locks() -> bool:
    """Whether a session waits for a lock on the polls (the consumer's lock_polls)."""
    async with connection() as conn:  # pg_stat_activity is read once per transaction
        cur = await conn.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE wait_event_type = 'Lock' AND query LIKE '%%FOR KEY SHARE%%'"
        )
        row = await cur.fetchone()
    return bool(row and row[0])


def _group_stable_with(group: str, members: int) -> bool:
    admin = broker.admin_client()
    try:
        described = admin.describe_groups([group])[group]
    finally:
        admin.close()
    return described["group_state"] == "Stable" and len(described["members"]) == members


async def _both_hold_partitions(logs: list[Path]) -> bool:
    return all(_last_assignment(log.read_text()) for log in logs)


def _logged_at(line: str) -> datetime:
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")


async def _polls_on_partitions(partitions: int) -> list[SamplePoll]:
    """Polls whose keys land on every one of the topic's partitions."""
    creator = await make_user()
    polls: dict[int, SamplePoll] = {}
    for _ in range(100):
        poll = await make_poll(creator)
        key = VoteEvent.new(1, poll.id, 1).key()
        polls.setdefault((murmur2(key) & 0x7FFFFFFF) % partitions, poll)
        if len(polls) == partitions:
            return list(polls.values())
    raise AssertionError("could not cover every partition")


def _last_assignment(log: str) -> list[int]:
    """The partitions a consumer process held after its last rebalance."""
    lines = [line for line in log.splitlines() if "; now holding [" in line]
    if not lines:
        return []
    return [int(p) for p in lines[-1].rsplit("[", 1)[1].rstrip("]").split(",") if p.strip()]


def _records_handled(log: str) -> int:
    """The total a consumer process logs when it stops."""
    found = re.search(r"consumer stopped: (\d+) records", log)
    return int(found.group(1)) if found else 0


async def test_valkey_restart_while_consuming_catches_up(
    kafka_topic, kafka_producer, valkey_client
) -> None:
    polls, events = await random_events(400, seed=8)
    group = f"g-{uuid.uuid4().hex[:8]}"
    profile = get_profile("test")
    with consumer_thread(kafka_topic, group, batch_size=50):
        valkey_service.stop(profile)
        try:
            produce(kafka_producer, kafka_topic, events)
            await asyncio.sleep(3)
            # Paused: at most the batch in hand went to PostgreSQL, nothing beyond it.
            assert await stored_offset_total(group, kafka_topic) <= 50
        finally:
            valkey_service.start(profile)
        total = await eventually(lambda: stored_offset_total(group, kafka_topic), 400, within=60)
        assert total == 400

        async def cached() -> dict[int, dict[int, int]]:
            found = {}
            for poll in polls:
                data = valkey_client.hget(f"counts:poll:{poll.id}", "counts")
                pairs = json.loads(data or "[]")
                found[poll.id] = {c["vote_option_id"]: c["vote_count"] for c in pairs}
            return found

        counts, _ = expected_state(events, polls)
        assert await eventually(cached, counts, within=60) == counts


@pytest.mark.stack_control
async def test_postgres_restart_mid_stream_loses_and_doubles_nothing(
    kafka_topic, kafka_producer, tmp_path
) -> None:
    polls, events = await random_events(1500, seed=9)
    group = f"g-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "consumer.log"
    profile = get_profile("test")
    proc = start_consumer_process(kafka_topic, group, log, batch_size=20)
    try:
        produce(kafka_producer, kafka_topic, events[:750])
        assert await eventually(lambda: _progressed(group, kafka_topic), True, within=60), (
            log.read_text()[-2000:]
        )
        postgres_service.stop(profile)
        try:
            produce(kafka_producer, kafka_topic, events[750:])
            await asyncio.sleep(3)  # the consumer meets the outage and keeps retrying
        finally:
            postgres_service.start(profile)
            await _reset_pools()
        total = await eventually(lambda: stored_offset_total(group, kafka_topic), 1500, within=120)
        assert total == 1500, log.read_text()[-3000:]
        assert proc.poll() is None, "the consumer died during the outage"
    finally:
        assert stop_consumer_process(proc) == 0, log.read_text()[-3000:]
    assert "PostgreSQL unavailable" in log.read_text()
    counts, votes = expected_state(events, polls)
    state = await snapshot(polls)
    assert state[0] == counts and state[1] == votes


async def _progressed(group: str, topic: str) -> bool:
    return await stored_offset_total(group, topic) > 0


async def _reset_pools() -> None:
    """This process's pooled connections died with the server: start from fresh ones."""
    await close_async_pool()
    await asyncio.to_thread(run_sync, close_async_pool())  # the sync bridge loop's pool
    close_sync_pool()
