"""The Kafka side of the vote consumer: polling, commit policy, retries and shutdown.

The business logic is two plain functions in `votes.apply`: `apply_batches` (in one
PostgreSQL transaction) and `cache_counts` (after it committed). This runner only moves
records to them, everything one poll returned (all its partitions) in one call, and:

- waits for the database (and its schema) before it joins the group;
- keeps newly assigned partitions paused until it has sought each to the offset stored
  in PostgreSQL + 1 (read between polls, never in the rebalance listener: that runs on
  the client's network thread, and blocking it would stop the heartbeats);
- commits Kafka offsets by its commit policy, never before PostgreSQL committed the
  batch (Kafka's offsets are for lag monitoring; PostgreSQL's stored offset is the truth);
- while PostgreSQL or a service a step needs is down, pauses every assigned partition
  (also one assigned during the wait) and retries with backoff, never moving past work
  that is not in PostgreSQL;
- after SIGTERM/SIGINT finishes the batch in hand, then exits.

Overlap: the steps run on one worker thread (`_Applier`), at most one batch in flight,
while this thread polls and decodes the next batch (psycopg releases the GIL while it
waits for PostgreSQL, which does most of the work of a batch). Every KafkaConsumer call
stays on this thread (the client is not thread-safe). A batch's outcome is settled
here (Kafka commit, metrics) before the next one goes to the worker; a batch that
failed is retried from here as before, paused, before anything newer is applied. A
revocation waits for the batch in flight, and records of revoked partitions polled
before it are dropped, so no batch of a revoked partition is applied after the
revocation callback returned.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import psycopg
from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.errors import FencedInstanceIdError, KafkaError
from kafka.structs import OffsetAndMetadata
from psycopg_pool import PoolTimeout

from db.backoff import Backoff
from db.pool import ROLLED_BACK, get_sync_pool
from feedapp.outages import KAFKA, POSTGRESQL, VALKEY
from votes import broker, consumer_metrics
from votes.apply import (
    BatchOutcome,
    StepUnavailable,
    apply_batches,
    cache_counts,
    stored_offsets,
)

Batches = dict[TopicPartition, list[ConsumerRecord]]

log = logging.getLogger(__name__)

FIRST_BACKOFF_SECONDS = 0.2
MAX_BACKOFF_SECONDS = 10.0
# After SIGTERM, the post-commit step gets this many more tries before the process exits.
FINAL_ATTEMPTS = 3
# A batch rolled back to break a deadlock is applied again at once this many times.
CONFLICT_RETRIES = 3
PAUSED = "the consumer pauses its partitions and retries"
# How long a thread holds the GIL while another waits for it (Python's default: 5 ms).
GIL_SWITCH_SECONDS = 0.0005

# KAFKA_CONSUMER_ASSIGNMENT: cooperative rebalancing (KIP-429) moves only the partitions
# that change owner, so the others are consumed on; range is kafka-python's eager default.
ASSIGNORS: dict[str, list[type[AbstractPartitionAssignor]]] = {
    "cooperative-sticky": [CooperativeStickyAssignor],
    "range": [RangePartitionAssignor],
}


@dataclass(frozen=True)
class CommitPolicy:
    """When the runner commits Kafka offsets (Arroyo's idea of a named commit policy).

    Offsets are committed only for batches PostgreSQL has committed, so Kafka's committed
    offsets never run ahead of what is applied. They only feed lag monitoring (the
    consumer resumes from PostgreSQL's stored offsets), so committing less often saves
    broker round trips and costs only a staler lag figure: at most every
    `min_interval_seconds` (also while idle, so the figure settles), and always before
    the runner stops.
    """

    min_interval_seconds: float = 0.0

    def due(self, last_commit: float, now: float) -> bool:
        return now - last_commit >= self.min_interval_seconds


# The default. A commit is a synchronous round trip to the group's coordinator (7 ms
# median at 200 votes/s here) made between two batches: after every batch it delayed
# each vote's update by that much (docs/BENCHMARKS.md, end to end).
COMMIT_EVERY_SECOND = CommitPolicy(min_interval_seconds=1.0)


@dataclass
class RunnerConfig:
    """What one consumer runs against, and how (`consume_votes` takes its defaults)."""

    bootstrap_servers: list[str]
    topic: str
    group: str
    batch_size: int = 2000
    poll_timeout_ms: int = 500
    stats_interval_seconds: float = 10.0
    commit_policy: CommitPolicy = COMMIT_EVERY_SECOND
    # Group membership (KAFKA_CONSUMER_* settings; these defaults are theirs).
    session_timeout_ms: int = 10000
    heartbeat_interval_ms: int = 1000
    max_poll_interval_ms: int = 30000
    assignment: str = "cooperative-sticky"
    # Static membership (KIP-345): a restarted consumer with the same id takes its
    # partitions back at once, without a rebalance. Unique per running consumer.
    instance_id: str | None = None


@dataclass
class Stats:
    applied: int = 0
    fresh: int = 0
    poison: int = 0
    gone: int = 0
    batches: int = 0
    since: float = field(default_factory=time.monotonic)


@dataclass
class _Applied:
    """What one attempt on the worker thread did: the batch is in PostgreSQL; `cached`
    is False when its post-commit step is still to be done (the service was down)."""

    outcome: BatchOutcome
    cached: bool


class _Applier:
    """Runs the steps on one worker thread, one batch at a time (at most one in flight).

    One attempt per batch: retries, pauses and everything else that needs the Kafka
    client stay on the runner's thread.
    """

    def __init__(self, config: RunnerConfig) -> None:
        self.config = config
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="apply-votes")
        self.in_flight: Future[_Applied] | None = None

    def start(self, batches: Batches) -> Future[_Applied]:
        assert self.in_flight is None or self.in_flight.done(), "one batch in flight at most"
        records = {tp.partition: kafka_records for tp, kafka_records in batches.items()}
        self.in_flight = self.executor.submit(self._attempt, records)
        return self.in_flight

    def wait(self) -> None:
        """Until the batch in flight (if any) is committed or has failed."""
        if self.in_flight is not None:
            futures.wait([self.in_flight])  # its outcome, or its failure, is the runner's to handle

    def close(self) -> None:
        self.executor.shutdown(wait=True)

    def _attempt(self, records: dict[int, list[ConsumerRecord]]) -> _Applied:
        with get_sync_pool().connection() as conn:
            outcome = apply_batches(conn, self.config.group, self.config.topic, records)
        POSTGRESQL.ended()
        try:
            cache_counts([outcome])
        except StepUnavailable as exc:
            log.info("%s; the runner retries", exc)
            return _Applied(outcome, cached=False)
        VALKEY.ended()
        return _Applied(outcome, cached=True)


class _Positions(ConsumerRebalanceListener):
    """Newly assigned partitions wait, paused, until the runner has sought each to its
    stored offset + 1 (the listener itself runs on the client's network thread, so it
    does no I/O of its own).

    A revocation waits for the batch in flight on the worker thread (for as long as one
    transaction takes; heartbeats wait with it), and notes the revoked partitions so
    that the runner drops their records polled before: once this callback returned, no
    batch of them is applied here. `lock` keeps that check and the start of the next
    batch together.
    """

    def __init__(self, consumer: KafkaConsumer, config: RunnerConfig, applier: _Applier) -> None:
        self.consumer = consumer
        self.config = config
        self.applier = applier
        self.waiting: set[TopicPartition] = set()
        self.lock = threading.Lock()
        self.revoked: set[TopicPartition] = set()  # since the runner's last poll began
        self.assigned = False  # partitions were assigned since the runner last positioned

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        with self.lock:
            self.applier.wait()
            self.revoked.update(revoked)
            self.waiting.difference_update(revoked)
        holding = self.consumer.assignment() - set(revoked)
        log.info("partitions revoked: %s; now holding %s", _numbers(revoked), _numbers(holding))

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        if not assigned:
            return
        self.consumer.pause(*assigned)
        self.waiting.update(assigned)
        self.assigned = True  # the runner's poll returns, to seek them
        holding = self.consumer.assignment() | set(assigned)
        log.info("partitions assigned: %s; now holding %s", _numbers(assigned), _numbers(holding))

    def position(self) -> None:
        """Seek the waiting partitions to their stored offsets + 1; they stay paused while
        PostgreSQL cannot say where they are."""
        self.assigned = False  # before looking: partitions assigned from now on end the poll
        self.waiting.intersection_update(self.consumer.assignment())
        if not self.waiting:
            return
        try:
            with get_sync_pool().connection() as conn:
                stored = stored_offsets(conn, self.config.group, self.config.topic)
        except (psycopg.Error, PoolTimeout) as exc:
            POSTGRESQL.failed(repr(exc), PAUSED)
            return
        for tp in self.waiting:
            if tp.partition in stored:
                self.consumer.seek(tp, stored[tp.partition] + 1)
            else:
                self.consumer.seek_to_beginning(tp)
        self.consumer.resume(*self.waiting)
        self.waiting.clear()

    def start(self, batches: Batches) -> Future[_Applied] | None:
        """Start applying the records of partitions still held; None when none are."""
        with self.lock:
            held = self.consumer.assignment()
            kept = {tp: rs for tp, rs in batches.items() if tp in held - self.revoked}
            return self.applier.start(kept) if kept else None

    def new_poll(self) -> None:
        """The records the next poll returns are fetched after the revocations so far."""
        with self.lock:
            self.revoked.clear()


def _numbers(partitions: Iterable[TopicPartition]) -> list[int]:
    return sorted(tp.partition for tp in partitions)


def make_consumer(config: RunnerConfig) -> broker.VoteConsumer:
    """The group member. Kafka-python's defaults (a 45 s session, eager rebalancing) left a
    killed consumer's partitions idle for 45 s and stopped every member in a rebalance;
    the settings of RunnerConfig bound both (docs/RELIABILITY.md)."""
    return broker.VoteConsumer(
        bootstrap_servers=config.bootstrap_servers,
        group_id=config.group,
        client_id=f"{config.group}-consumer",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=config.batch_size,
        isolation_level="read_committed",
        session_timeout_ms=config.session_timeout_ms,
        heartbeat_interval_ms=config.heartbeat_interval_ms,
        max_poll_interval_ms=config.max_poll_interval_ms,
        partition_assignment_strategy=ASSIGNORS[config.assignment],
        group_instance_id=config.instance_id or None,
        # Not up to 30 s between reconnection attempts after a broker outage.
        reconnect_backoff_max_ms=1000,
    )


def wait_for_database(config: RunnerConfig, stop: threading.Event) -> bool:
    """Wait until PostgreSQL answers and has the schema; False when stopping first.

    A consumer started before the database is up or migrated would otherwise join the
    group and hold partitions it cannot apply.
    """
    backoff = Backoff(FIRST_BACKOFF_SECONDS, MAX_BACKOFF_SECONDS)
    said = ""
    while not stop.is_set():
        try:
            with get_sync_pool().connection() as conn:
                stored_offsets(conn, config.group, config.topic)
            if said:
                log.warning("the database is ready; consuming")
            return True
        except psycopg.errors.UndefinedTable:
            reason = "its schema is missing (run `python manage.py dbmate up`)"
        except (psycopg.Error, PoolTimeout) as exc:
            reason = f"it does not answer ({exc.__class__.__name__})"
        if reason != said:
            log.warning("waiting for the database: %s", reason)
            said = reason
        stop.wait(backoff.next())
    return False


def run(
    config: RunnerConfig,
    stop: threading.Event,
    consumer_factory: Callable[[RunnerConfig], broker.VoteConsumer] = make_consumer,
) -> Stats:
    """Consume until `stop` is set; returns the totals."""
    if not wait_for_database(config, stop):
        return Stats()
    consumer = consumer_factory(config)
    # The group's leader assigns only partitions it has metadata for: a consumer that
    # joined before it knew a new topic's partitions was seen to stay without any.
    while not consumer.partitions_for_topic(config.topic) and not stop.is_set():
        log.warning("waiting for the metadata of topic %s", config.topic)
        stop.wait(1.0)
    # The worker thread needs the GIL back after each PostgreSQL round trip, and the
    # runner's thread (decoding records in pure Python) would hold it for up to the
    # default 5 ms each time: several times per batch. 0.5 ms measured faster.
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    applier = _Applier(config)
    positions = _Positions(consumer, config, applier)
    consumer.subscribe([config.topic], listener=positions)
    totals = Stats()
    interval = Stats()
    committer = _Committer(consumer, config)
    # Committed batches whose post-commit step has not run yet (while a service is down).
    unfinished: list[BatchOutcome] = []
    # The batch on the worker thread: its records (for a retry) and its attempt.
    in_flight: tuple[Batches, Future[_Applied]] | None = None

    def settle(batches: Batches, attempt: Future[_Applied], forever: bool = True) -> None:
        """Wait for a batch's attempt; retry it here if it failed; then commit, count and
        finish its post-commit step (paused while that is unavailable)."""
        nonlocal interval
        applied = _applied_until_done(consumer, positions, batches, attempt, stop)
        if applied is None:
            return  # stopping, or the partitions moved to another consumer
        outcome = applied.outcome
        consumer_metrics.batch_applied(
            sum(map(len, batches.values())),
            outcome.fresh,
            outcome.applicable,
            outcome.poison,
            outcome.gone,
        )
        if not applied.cached:
            unfinished.append(outcome)
        committer.add(outcome.last_offsets)
        consumer_metrics.record_lag(consumer)
        for stats in (totals, interval):
            stats.batches += 1
            stats.fresh += outcome.fresh
            stats.applied += outcome.applicable
            stats.poison += outcome.poison
            stats.gone += outcome.gone
        if forever:
            _after_commit_until_done(consumer, positions, unfinished, stop)
        if time.monotonic() - interval.since >= config.stats_interval_seconds:
            _log_stats(consumer, interval)
            interval = Stats()

    log.info("consuming %s as group %s", config.topic, config.group)
    try:
        kafka_backoff = Backoff(FIRST_BACKOFF_SECONDS, MAX_BACKOFF_SECONDS)
        while not stop.is_set():
            if in_flight is not None and in_flight[1].done():
                done, in_flight = in_flight, None  # settled once, even if settling raises
                settle(*done)
            positions.position()
            positions.new_poll()
            try:
                # While the worker applies the batch in flight, this polls and decodes the
                # next one.
                # It also ends early to seek newly assigned partitions, or to stop.
                batches = consumer.poll_until(
                    lambda: positions.assigned or stop.is_set(),
                    config.poll_timeout_ms,
                    config.batch_size,
                )
                kafka_backoff.reset()
                consumer_metrics.polled()
                KAFKA.ended()
            except FencedInstanceIdError:
                log.critical(
                    "another consumer of group %s uses instance id %r; stopping",
                    config.group,
                    config.instance_id,
                )
                raise
            except KafkaError as exc:
                # The client reconnects by itself; records not yet applied come again.
                consumer_metrics.retried("kafka")
                wait = kafka_backoff.next()
                KAFKA.failed(repr(exc), "the consumer retries")
                log.info("Kafka unavailable, retrying in %.1f s: %r", wait, exc)
                stop.wait(wait)
                continue
            if not batches:
                # What the last batches applied, once due: the figures settle while idle.
                committer.add({})
                consumer_metrics.record_lag(consumer)
                continue  # polling on keeps the group's rebalances going meanwhile
            if in_flight is not None:
                # One batch in flight at most, and settled (retried if it failed) before
                # anything newer is applied.
                done, in_flight = in_flight, None
                settle(*done)
            if not stop.is_set():
                attempt = positions.start(batches)
                if attempt is not None:
                    in_flight = (batches, attempt)
    finally:
        if in_flight is not None:
            # SIGTERM finishes the batch in hand: its transaction, Kafka commit and
            # post-commit step (a few more tries below).
            settle(*in_flight, forever=False)
        applier.close()
        if unfinished:
            _after_commit_until_done(
                consumer, positions, unfinished, threading.Event(), FINAL_ATTEMPTS
            )
        committer.flush()
        consumer.close(autocommit=False)
        if config.instance_id:
            # kafka-python's static members do not leave the group on close (their session
            # would have to expire): the others take the partitions over only now.
            broker.remove_static_member(config.group, config.instance_id)
        log.info(
            "consumer stopped: %d records in %d batches, %d votes applicable, "
            "%d poison, %d for gone polls",
            totals.fresh,
            totals.batches,
            totals.applied,
            totals.poison,
            totals.gone,
        )
    return totals


def _applied_until_done(
    consumer: KafkaConsumer,
    positions: _Positions,
    batches: Batches,
    attempt: Future[_Applied],
    stop: threading.Event,
) -> _Applied | None:
    """The outcome of a batch's attempt on the worker; when it failed, the batch is
    attempted again (paused while PostgreSQL is down) until it is applied, the process
    stops, or none of its partitions is held any more."""
    backoff = Backoff(FIRST_BACKOFF_SECONDS, MAX_BACKOFF_SECONDS)
    conflicts = 0
    while True:
        try:
            return attempt.result()
        except ROLLED_BACK as exc:
            # A deadlock or serialization conflict: the documented remedy is to run the
            # transaction again, at once (a few times, then as for an outage).
            conflicts += 1
            log.warning("batch rolled back by PostgreSQL (%r); applying it again", exc)
            wait = 0.0 if conflicts <= CONFLICT_RETRIES else backoff.next()
        except (psycopg.OperationalError, PoolTimeout, OSError) as exc:
            consumer_metrics.retried("postgresql")
            wait = backoff.next()
            POSTGRESQL.failed(repr(exc), PAUSED)
            _drop_broken_connections()
            log.info(
                "PostgreSQL unavailable, %d records not applied, retrying in %.1f s: %r",
                sum(map(len, batches.values())),
                wait,
                exc,
            )
        if wait and not _wait_paused(consumer, positions, wait, stop):
            return None
        # Partitions that moved to another consumer during the wait are its work now.
        retry = positions.start(batches)
        if retry is None:
            return None
        attempt = retry


def _drop_broken_connections() -> None:
    """After a failure, check every idle pooled connection at once: a restart breaks them
    all, and the pool would otherwise find them one by one, sleeping longer after each."""
    try:
        get_sync_pool().check()
    except (psycopg.Error, PoolTimeout, OSError) as exc:
        log.info("checking the pooled connections failed: %r", exc)


def _after_commit_until_done(
    consumer: KafkaConsumer,
    positions: _Positions,
    unfinished: list[BatchOutcome],
    stop: threading.Event,
    attempts: int | None = None,
) -> None:
    """Run the post-commit step for committed batches; while it is unavailable, pause and
    retry (only `attempts` times when given: the process is stopping)."""
    backoff = Backoff(FIRST_BACKOFF_SECONDS, MAX_BACKOFF_SECONDS)
    while unfinished and (attempts is None or attempts > 0):
        try:
            cache_counts(unfinished)
            unfinished.clear()
            VALKEY.ended()
            return
        except StepUnavailable as exc:
            consumer_metrics.retried("valkey")
            wait = backoff.next()
            VALKEY.failed(str(exc), PAUSED)
            log.info("%s; retrying in %.1f s", exc, wait)
        if attempts is not None:
            attempts -= 1
            time.sleep(wait)
        elif not _wait_paused(consumer, positions, wait, stop):
            return


class _Committer:
    """Kafka offsets of batches PostgreSQL committed, committed by the commit policy."""

    def __init__(self, consumer: KafkaConsumer, config: RunnerConfig) -> None:
        self.consumer = consumer
        self.topic = config.topic
        self.policy = config.commit_policy
        self.pending: dict[int, int] = {}  # partition -> last offset applied
        self.last_commit = float("-inf")

    def add(self, last_offsets: dict[int, int]) -> None:
        self.pending.update(last_offsets)
        if self.policy.due(self.last_commit, time.monotonic()):
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        offsets = {
            TopicPartition(self.topic, partition): OffsetAndMetadata(offset + 1, "", -1)
            for partition, offset in self.pending.items()
            if offset >= 0
        }
        self.pending = {}
        self.last_commit = time.monotonic()
        try:
            self.consumer.commit(offsets)
        except KafkaError as exc:
            # Harmless: PostgreSQL holds the applied offsets; these only feed lag monitoring.
            log.info("kafka offset commit skipped: %r", exc)


def _wait_paused(
    consumer: KafkaConsumer, positions: _Positions, seconds: float, stop: threading.Event
) -> bool:
    """Keep group membership alive without consuming for `seconds`; False when stopping.

    Every assigned partition stays paused, also one assigned during the wait; records a
    poll returns anyway are not dropped: their partition is sought back to the first of
    them, so it is fetched again once the wait is over.
    """
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            if stop.is_set():
                return False
            consumer.pause(*consumer.assignment())
            try:
                fetched = consumer.poll(timeout_ms=min(200, int(seconds * 1000)))
                consumer_metrics.polled()
            except KafkaError as exc:
                log.info("Kafka unavailable while paused: %r", exc)
                stop.wait(0.2)
                continue
            for tp, records in fetched.items():
                if records and tp in consumer.assignment():
                    consumer.seek(tp, records[0].offset)
    finally:
        consumer.resume(*(consumer.assignment() - positions.waiting))
    return not stop.is_set()


def _log_stats(consumer: KafkaConsumer, stats: Stats) -> None:
    elapsed = max(time.monotonic() - stats.since, 1e-9)
    lag: int | str = 0
    try:
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is not None:
                lag = int(lag) + max(highwater - consumer.position(tp, timeout_ms=1000), 0)
    except KafkaError as exc:
        lag = f"unknown ({exc.__class__.__name__})"
    log.info(
        "applied %d records in %d batches (%.0f records/s), %d poison, %d gone, "
        "lag %s, partitions %d",
        stats.fresh,
        stats.batches,
        stats.fresh / elapsed,
        stats.poison,
        stats.gone,
        lag,
        len(consumer.assignment()),
    )
