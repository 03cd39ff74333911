"""Test fixtures: the real test stack (PostgreSQL, Valkey, Kafka) and clients for it.

The stack runs in its own data folder and ports (profile `test`), so a running
`make dev` is never touched. The test database is rebuilt by dbmate for every run.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import valkey
from django.conf import settings
from django.test import AsyncClient
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

from db.migrate import dbmate
from db.pool import close_async_pool, close_sync_pool
from polls.signals import poll_deleted
from stack.__main__ import start_all
from stack.profiles import get_profile
from tests.consumers import consumer_thread
from votes import broker

PROFILE = get_profile("test")


@pytest.fixture(scope="session", autouse=True)
def test_stack() -> None:
    """Start the test stack if it is not running (a no-op when it is)."""
    start_all(PROFILE)


@pytest.fixture(scope="session", autouse=True)
def test_database(test_stack: None) -> None:
    """A fresh test database built from db/migrations by dbmate."""
    assert settings.DATABASE_URL.rsplit("/", 1)[-1] == PROFILE.database, "not the test database"
    dbmate(settings.DATABASE_URL, "drop")
    dbmate(settings.DATABASE_URL, "create")
    dbmate(settings.DATABASE_URL, "up")


@pytest.fixture(scope="session", autouse=True)
def empty_valkey(test_stack: None) -> None:
    """No keys from an earlier run: ids restart with the rebuilt database, so cached counts
    and stream leases of that run would belong to this run's polls and users."""
    client = valkey.Valkey.from_url(settings.VALKEY_URL, socket_timeout=5)
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def vote_topic(test_stack: None) -> Iterator[str]:
    """This run's vote topic (see tests/settings.py), deleted at the end."""
    topic = settings.KAFKA_VOTE_TOPIC
    broker.ensure_topic(topic, settings.KAFKA_VOTE_TOPIC_PARTITIONS, 1)
    yield topic
    broker.delete_topic(topic)


@pytest.fixture(scope="session")
def vote_consumer(vote_topic: str, test_database: None) -> Iterator[None]:
    """The real vote consumer for this run's topic, in a background thread."""
    with consumer_thread(vote_topic, f"test-group-{uuid.uuid4().hex[:8]}"):
        yield


@pytest.fixture(scope="session")
def django_db_setup(test_database: None) -> None:
    """Django's own connection uses the dbmate-built database as it is (no Django migrate)."""


@pytest.fixture(scope="session", autouse=True)
def django_database_everywhere(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """Let any test reach Django's own connection to the real test database.

    API requests run Django's request signals, whose receivers check Django's
    connection of asgiref's shared thread; after an admin test opened one there,
    pytest-django's blocker would turn that check into an error in unrelated tests.
    """
    with django_db_blocker.unblock():
        yield


@pytest.fixture
def deleted_polls() -> Iterator[list[int]]:
    """The ids poll_deleted is sent for during the test."""
    seen: list[int] = []

    async def receiver(sender: object, poll_id: int, **kwargs: Any) -> None:
        seen.append(poll_id)

    poll_deleted.connect(receiver)
    yield seen
    poll_deleted.disconnect(receiver)


@pytest.fixture(scope="session", autouse=True)
async def close_the_session_loops_pool() -> AsyncIterator[None]:
    """Close the session loop's async pool before the loop closes.

    psycopg_pool's maintenance workers treat a cancellation as a failed task and keep
    running, so a pool still reconnecting after a restart test would hang the loop's
    shutdown, which cancels every task and waits for them.
    """
    yield
    await close_async_pool()


@pytest.fixture(autouse=True)
def fresh_sync_pool_after_a_restart(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test that restarted a service, the next test's sync pool starts afresh.

    The consumer finds a restart's dead pooled connections by failing on one and then
    checking them all (votes.runner); a test that takes a connection straight from this
    process's pool has no such retry.
    """
    yield
    if request.node.get_closest_marker("stack_control"):
        close_sync_pool()


@pytest.fixture
def api() -> AsyncClient:
    """An in-process async client for the ASGI app's views."""
    return AsyncClient()


@pytest.fixture
def valkey_client() -> Iterator[valkey.Valkey]:
    client = valkey.Valkey.from_url(settings.VALKEY_URL, socket_timeout=5)
    yield client
    client.close()


@pytest.fixture
def kafka_topic() -> Iterator[str]:
    """A topic of its own for one test, deleted afterwards."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    admin = KafkaAdminClient(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS)
    admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1)])
    yield name
    admin.delete_topics([name])
    admin.close()


@pytest.fixture
def kafka_producer() -> Iterator[KafkaProducer]:
    producer = KafkaProducer(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, acks="all")
    yield producer
    producer.close(timeout=5)


@pytest.fixture
def kafka_consumer() -> Iterator[Callable[..., KafkaConsumer]]:
    """Make consumers that read a topic from its start; closed after the test."""
    made: list[KafkaConsumer] = []

    def make(topic: str, group_id: str | None = None, **options: object) -> KafkaConsumer:
        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
            group_id=group_id or f"test-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            **options,
        )
        made.append(consumer)
        return consumer

    yield make
    for consumer in made:
        consumer.close()
