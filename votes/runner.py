"""The Kafka side of the vote consumer: polling, commit policy, retries and shutdown.

The business logic is two plain functions in `votes.apply`: `apply_batches` (in one
PostgreSQL transaction) and `cache_counts` (after it committed). This runner only moves
records to them, everything one poll returned (all its partitions) in one call, and:

- on (re)assignment seeks each partition to the offset stored in PostgreSQL + 1;
- commits Kafka offsets by its commit policy, never before PostgreSQL committed the
  batch (Kafka's offsets are for lag monitoring; PostgreSQL's stored offset is the truth);
- while PostgreSQL or a service a step needs is down, pauses its partitions and retries
  with backoff, never moving past work that is not in PostgreSQL;
- after SIGTERM/SIGINT finishes the batch in hand, then exits.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from db.backoff import Backoff
from db.pool import get_sync_pool
from votes import consumer_metrics
from votes.apply import (
    BatchOutcome,
    Record,
    StepUnavailable,
    apply_batches,
    cache_counts,
    stored_offsets,
)

log = logging.getLogger(__name__)

FIRST_BACKOFF_SECONDS = 0.2
MAX_BACKOFF_SECONDS = 10.0
# After SIGTERM, the post-commit step gets this many more tries before the process exits.
FINAL_ATTEMPTS = 3


@dataclass(frozen=True)
class CommitPolicy:
    """When the runner commits Kafka offsets (Arroyo's idea of a named commit policy).

    Offsets are committed only for batches PostgreSQL has committed, so Kafka's committed
    offsets never run ahead of what is applied. They only feed lag monitoring (the
    consumer resumes from PostgreSQL's stored offsets), so committing less often saves
    broker round trips and costs only a staler lag figure: at most every
    `min_interval_seconds`, and always before the runner stops.
    """

    min_interval_seconds: float = 0.0

    def due(self, last_commit: float, now: float) -> bool:
        return now - last_commit >= self.min_interval_seconds


# The default: after every batch PostgreSQL committed.
COMMIT_EVERY_BATCH = CommitPolicy()


@dataclass
class RunnerConfig:
    """What one consumer runs against, and how (`consume_votes` takes its defaults)."""

    bootstrap_servers: list[str]
    topic: str
    group: str
    batch_size: int = 2000
    poll_timeout_ms: int = 500
    stats_interval_seconds: float = 10.0
    commit_policy: CommitPolicy = COMMIT_EVERY_BATCH


@dataclass
class Stats:
    applied: int = 0
    fresh: int = 0
    poison: int = 0
    gone: int = 0
    batches: int = 0
    since: float = field(default_factory=time.monotonic)


class _SeekToStored(ConsumerRebalanceListener):
    """On assignment, continue each partition right after its offset in PostgreSQL."""

    def __init__(self, consumer: KafkaConsumer, config: RunnerConfig) -> None:
        self.consumer = consumer
        self.config = config

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        log.info("partitions revoked: %s", sorted(tp.partition for tp in revoked))

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        if not assigned:
            return
        # If this fails, the consumer starts from the committed Kafka offsets, which never
        # run ahead of PostgreSQL's; records already applied are then skipped.
        with get_sync_pool().connection() as conn:
            stored = stored_offsets(conn, self.config.group, self.config.topic)
        for tp in assigned:
            if tp.partition in stored:
                self.consumer.seek(tp, stored[tp.partition] + 1)
            else:
                self.consumer.seek_to_beginning(tp)
        log.info("partitions assigned: %s", sorted(tp.partition for tp in assigned))


def make_consumer(config: RunnerConfig) -> KafkaConsumer:
    consumer = KafkaConsumer(
        bootstrap_servers=config.bootstrap_servers,
        group_id=config.group,
        client_id=f"{config.group}-consumer",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=config.batch_size,
        isolation_level="read_committed",
    )
    consumer.subscribe([config.topic], listener=_SeekToStored(consumer, config))
    return consumer


def run(
    config: RunnerConfig,
    stop: threading.Event,
    consumer_factory: Callable[[RunnerConfig], KafkaConsumer] = make_consumer,
) -> Stats:
    """Consume until `stop` is set; returns the totals."""
    consumer = consumer_factory(config)
    totals = Stats()
    interval = Stats()
    committer = _Committer(consumer, config)
    # Committed batches whose post-commit step has not run yet (while a service is down).
    unfinished: list[BatchOutcome] = []
    log.info("consuming %s as group %s", config.topic, config.group)
    try:
        kafka_backoff = Backoff(FIRST_BACKOFF_SECONDS, MAX_BACKOFF_SECONDS)
        while not stop.is_set():
            try:
                batches = consumer.poll(
                    timeout_ms=config.poll_timeout_ms, max_records=config.batch_size
                )
                kafka_backoff.reset()
                consumer_metrics.polled()
            except KafkaError as exc:
                # The client reconnects by itself; records not yet applied come again.
                consumer_metrics.retried("kafka")
                wait = kafka_backoff.next()
                log.error("Kafka unavailable, retrying in %.1f s: %r", wait, exc)
                stop.wait(wait)
                continue
            if not batches:
                continue
            outcome = _apply_until_done(consumer, config, batches, stop)
            if outcome is None:
                continue  # stopping, or the partitions moved to another consumer
            consumer_metrics.batch_applied(
                sum(map(len, batches.values())),
                outcome.fresh,
                outcome.applicable,
                outcome.poison,
                outcome.gone,
            )
            unfinished.append(outcome)
            committer.add(outcome.last_offsets)
            consumer_metrics.record_lag(consumer)
            for stats in (totals, interval):
                stats.batches += 1
                stats.fresh += outcome.fresh
                stats.applied += outcome.applicable
                stats.poison += outcome.poison
                stats.gone += outcome.gone
            _after_commit_until_done(consumer, unfinished, stop)
            if time.monotonic() - interval.since >= config.stats_interval_seconds:
                _log_stats(consumer, interval)
                interval = Stats()
    finally:
        if unfinished:
            _after_commit_until_done(consumer, unfinished, threading.Event(), FINAL_ATTEMPTS)
        committer.flush()
        consumer.close(autocommit=False)
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


def _apply_until_done(
    consumer: KafkaConsumer,
    config: RunnerConfig,
    batches: dict[TopicPartition, list[ConsumerRecord]],
    stop: threading.Event,
) -> BatchOutcome | None:
    """Apply one poll's records (all partitions, one transaction), retrying outages."""
    backoff = Backoff(FIRST_BACKOFF_SECONDS, MAX_BACKOFF_SECONDS)
    while True:
        records = {
            tp.partition: [Record(r.offset, r.value) for r in kafka_records]
            for tp, kafka_records in batches.items()
        }
        try:
            with get_sync_pool().connection() as conn:
                return apply_batches(conn, config.group, config.topic, records)
        except (psycopg.OperationalError, psycopg.errors.AdminShutdown, OSError) as exc:
            consumer_metrics.retried("postgresql")
            wait = backoff.next()
            log.error(
                "PostgreSQL unavailable, %d records not applied, retrying in %.1f s: %r",
                sum(map(len, records.values())),
                wait,
                exc,
            )
        if not _wait_paused(consumer, wait, stop):
            return None
        # Partitions that moved to another consumer during the wait are its work now.
        batches = {tp: rs for tp, rs in batches.items() if tp in consumer.assignment()}
        if not batches:
            return None


def _after_commit_until_done(
    consumer: KafkaConsumer,
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
            return
        except StepUnavailable as exc:
            consumer_metrics.retried("valkey")
            wait = backoff.next()
            log.error("%s; retrying in %.1f s", exc, wait)
        if attempts is not None:
            attempts -= 1
            time.sleep(wait)
        elif not _wait_paused(consumer, wait, stop):
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


def _wait_paused(consumer: KafkaConsumer, seconds: float, stop: threading.Event) -> bool:
    """Keep group membership alive without fetching for `seconds`; False when stopping."""
    assigned = consumer.assignment()
    consumer.pause(*assigned)
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if stop.is_set():
                return False
            try:
                consumer.poll(timeout_ms=min(200, int(seconds * 1000)))
                consumer_metrics.polled()
            except KafkaError as exc:
                log.warning("Kafka unavailable while paused: %r", exc)
                stop.wait(0.2)
    finally:
        consumer.resume(*[tp for tp in assigned if tp in consumer.assignment()])
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
