"""The web process's Kafka producer: one per process, made on first use, flushed at exit."""

from __future__ import annotations

import asyncio
import atexit
import logging
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from kafka import KafkaProducer
from kafka.errors import KafkaError

from db.singletons import PerProcess
from votes import broker
from votes.messages import VoteEvent

log = logging.getLogger(__name__)


class VoteNotEnqueued(Exception):
    """The broker did not durably acknowledge the vote in time; nothing was accepted."""


def _make_producer() -> KafkaProducer:
    timeout_ms = int(settings.KAFKA_PRODUCE_TIMEOUT_SECONDS * 1000)
    broker.ensure_topic(
        settings.KAFKA_VOTE_TOPIC,
        settings.KAFKA_VOTE_TOPIC_PARTITIONS,
        settings.KAFKA_VOTE_TOPIC_REPLICATION,
    )
    producer = KafkaProducer(
        bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
        client_id="feedapp-web",
        acks="all",
        enable_idempotence=True,
        linger_ms=1,
        # The producer gives up on a record before the request's own deadline, so a 503
        # never leaves a record behind that could still be delivered later.
        delivery_timeout_ms=max(timeout_ms - 500, 1000),
        request_timeout_ms=max(timeout_ms - 600, 900),
        max_block_ms=1000,
    )
    # Fetch the topic's metadata now, so sends do not block on it later.
    producer.partitions_for(settings.KAFKA_VOTE_TOPIC)
    atexit.register(close_producer)
    log.info("kafka producer ready for topic %s", settings.KAFKA_VOTE_TOPIC)
    return producer


def _close(producer: KafkaProducer) -> None:
    producer.flush(timeout=settings.KAFKA_PRODUCE_TIMEOUT_SECONDS)
    producer.close(timeout=settings.KAFKA_PRODUCE_TIMEOUT_SECONDS)


_producer: PerProcess[KafkaProducer] = PerProcess(_make_producer, _close)


def get_producer() -> KafkaProducer:
    """The process's producer, created (and the topic ensured) on first use."""
    return _producer.get()


def close_producer() -> None:
    """Deliver what is buffered (bounded wait) and close."""
    _producer.close()


async def produce_vote(event: VoteEvent) -> None:
    """Send the event and wait until all in-sync replicas have it; VoteNotEnqueued if not."""
    try:
        producer = _producer.current or await sync_to_async(get_producer, thread_sensitive=False)()
        loop = asyncio.get_running_loop()
        acked: asyncio.Future[Any] = loop.create_future()

        def done(result: Any) -> None:
            loop.call_soon_threadsafe(_resolve, acked, result)

        producer.send(settings.KAFKA_VOTE_TOPIC, key=event.key(), value=event.encode()).add_both(
            done
        )
        result = await asyncio.wait_for(acked, settings.KAFKA_PRODUCE_TIMEOUT_SECONDS)
    except (KafkaError, OSError, TimeoutError) as exc:
        raise VoteNotEnqueued(repr(exc)) from exc
    if isinstance(result, BaseException):
        raise VoteNotEnqueued(repr(result))


def _resolve(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)
