"""Prometheus series of vote submission in the web process (served by feedapp/metrics.py).

The consumer's series are in votes/consumer_metrics.py: only that process defines them.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

VOTE_PRODUCE_SECONDS = Histogram(
    "feedapp_vote_produce_duration_seconds",
    "Time from handing a vote to the Kafka producer to the brokers' acknowledgement "
    "(or the failure).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
VOTE_PRODUCE_FAILURES = Counter(
    "feedapp_vote_produce_failures",
    "Votes the brokers did not acknowledge in time (answered 503).",
)
