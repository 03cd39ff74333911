"""Prometheus series of the vote consumer, served on its own port (CONSUMER_METRICS_PORT).

Only the consumer's process imports this module (votes/runner.py), so the web processes'
/api/metrics never carries these series. `serve` starts prometheus-client's HTTP server
in a thread; the loop-liveness gauge is what the container's health probe reads
(deploy/probe.py consumer).
"""

from __future__ import annotations

import logging
import time

from kafka import KafkaConsumer
from kafka.errors import KafkaError
from prometheus_client import Counter, Gauge, start_http_server

log = logging.getLogger(__name__)

BATCHES = Counter(
    "feedapp_consumer_batches",
    "Batches applied, each in one PostgreSQL transaction with its partitions' offsets.",
)
VOTES_APPLIED = Counter(
    "feedapp_consumer_votes_applied",
    "Votes applied (after reducing a batch to the last vote per user and poll).",
)
RECORDS_SKIPPED = Counter(
    "feedapp_consumer_records_skipped",
    "Records skipped, by reason: poison (not a vote event), duplicate (at or below the "
    "offset already applied), gone (its poll, option or user no longer exists).",
    ["reason"],
)
LAG = Gauge(
    "feedapp_consumer_lag_records",
    "Records of an assigned partition not yet applied (high watermark minus position).",
    ["partition"],
)
RETRIES = Counter(
    "feedapp_consumer_retries",
    "Waits before retrying after an outage, by cause (postgresql, valkey, kafka).",
    ["cause"],
)
SECONDS_SINCE_COMMIT = Gauge(
    "feedapp_consumer_seconds_since_last_commit",
    "Seconds since the consumer last committed a batch to PostgreSQL (since start if none); "
    "grows while idle, so alert on it together with the lag.",
)
SECONDS_SINCE_POLL = Gauge(
    "feedapp_consumer_seconds_since_last_poll",
    "Seconds since the consumer's loop last polled Kafka; a stuck loop makes it grow.",
)
for cause in ("postgresql", "valkey", "kafka"):
    RETRIES.labels(cause)
for reason in ("poison", "duplicate", "gone"):
    RECORDS_SKIPPED.labels(reason)

_started = time.monotonic()
_last_commit = _started
_last_poll = _started
SECONDS_SINCE_COMMIT.set_function(lambda: time.monotonic() - _last_commit)
SECONDS_SINCE_POLL.set_function(lambda: time.monotonic() - _last_poll)


def serve(port: int, address: str) -> None:
    """Serve the metrics on address:port from a daemon thread."""
    start_http_server(port, addr=address)
    log.info("consumer metrics on http://%s:%d/metrics", address, port)


def polled() -> None:
    """The loop went round (polled Kafka, or kept its membership while paused)."""
    global _last_poll
    _last_poll = time.monotonic()


def batch_applied(records: int, fresh: int, applied: int, poison: int, gone: int) -> None:
    """One committed batch: `records` received, `fresh` of them above the stored offsets."""
    global _last_commit
    _last_commit = time.monotonic()
    BATCHES.inc()
    VOTES_APPLIED.inc(applied)
    RECORDS_SKIPPED.labels("duplicate").inc(records - fresh)
    RECORDS_SKIPPED.labels("poison").inc(poison)
    RECORDS_SKIPPED.labels("gone").inc(gone)


def retried(cause: str) -> None:
    RETRIES.labels(cause).inc()


# kafka-python 3.0 answers each position() on its network thread, a hop across threads:
# for every assigned partition after every batch, that was 12 % of the consumer's CPU at
# 200 votes/s (one or two records a batch). A scrape comes every few seconds at most.
LAG_INTERVAL_SECONDS = 1.0
_lag_recorded = float("-inf")


def record_lag(consumer: KafkaConsumer) -> None:
    """Each assigned partition's lag, from what the client already knows (no request); at
    most once every LAG_INTERVAL_SECONDS (the runner also calls this while idle, so the
    figure settles)."""
    global _lag_recorded
    now = time.monotonic()
    if now - _lag_recorded < LAG_INTERVAL_SECONDS:
        return
    _lag_recorded = now
    try:
        lags = {}
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            position = consumer.position(tp, timeout_ms=100)
            if highwater is not None and position is not None:
                lags[str(tp.partition)] = max(highwater - position, 0)
    except KafkaError as exc:
        log.debug("lag unknown: %r", exc)
        return
    LAG.clear()
    for partition, lag in lags.items():
        LAG.labels(partition).set(lag)
