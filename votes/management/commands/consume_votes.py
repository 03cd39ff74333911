"""`manage.py consume_votes`: apply vote events from Kafka to PostgreSQL and Valkey."""

from __future__ import annotations

import signal
import threading
from argparse import ArgumentParser
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from votes import broker, consumer_metrics
from votes.runner import RunnerConfig, run


class Command(BaseCommand):
    help = "Consume vote events (one consumer group; run as many as there are partitions)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        # The defaults are the settings' and RunnerConfig's, stated once there.
        parser.add_argument(
            "--group",
            default=settings.KAFKA_CONSUMER_GROUP,
            help="Kafka consumer group (default: KAFKA_CONSUMER_GROUP, %(default)s)",
        )
        parser.add_argument(
            "--topic",
            default=settings.KAFKA_VOTE_TOPIC,
            help="topic of vote events, created if missing (default: KAFKA_VOTE_TOPIC, "
            "%(default)s)",
        )
        parser.add_argument(
            "--instance-id",
            default=settings.KAFKA_CONSUMER_INSTANCE_ID,
            help="a stable, unique name of this consumer for static group membership "
            "(default: KAFKA_CONSUMER_INSTANCE_ID; empty: dynamic membership)",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=RunnerConfig.batch_size,
            help="most records applied in one transaction (default: %(default)s)",
        )
        parser.add_argument(
            "--poll-timeout-ms",
            type=int,
            default=RunnerConfig.poll_timeout_ms,
            help="how long one poll of the broker waits for records (default: %(default)s)",
        )
        parser.add_argument(
            "--stats-interval",
            type=float,
            default=RunnerConfig.stats_interval_seconds,
            help="seconds between throughput and lag log lines (default: %(default)s)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        stop = threading.Event()

        def request_stop(signum: int, frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        if settings.CONSUMER_METRICS_PORT:
            consumer_metrics.serve(
                settings.CONSUMER_METRICS_PORT, settings.CONSUMER_METRICS_ADDRESS
            )
        broker.ensure_topic(
            options["topic"],
            settings.KAFKA_VOTE_TOPIC_PARTITIONS,
            settings.KAFKA_VOTE_TOPIC_REPLICATION,
        )
        run(
            RunnerConfig(
                bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
                topic=options["topic"],
                group=options["group"],
                batch_size=options["batch_size"],
                poll_timeout_ms=options["poll_timeout_ms"],
                stats_interval_seconds=options["stats_interval"],
                session_timeout_ms=settings.KAFKA_CONSUMER_SESSION_TIMEOUT_MS,
                heartbeat_interval_ms=settings.KAFKA_CONSUMER_HEARTBEAT_INTERVAL_MS,
                max_poll_interval_ms=settings.KAFKA_CONSUMER_MAX_POLL_INTERVAL_MS,
                assignment=settings.KAFKA_CONSUMER_ASSIGNMENT,
                instance_id=options["instance_id"] or None,
            ),
            stop,
        )
