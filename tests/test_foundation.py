"""The foundation: real services answer through the project's own clients."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from typing import Any

import pytest

from db.pool import connection
from db.sql import fetch_value
from stack import valkey as valkey_service
from stack.profiles import PROJECT_ROOT, get_profile
from tests.waiting import eventually

PROFILE = get_profile("test")


async def test_sql_round_trip_through_the_pool() -> None:
    text = 'it\'s a "test" -- not a comment; ☃'
    async with connection() as conn:
        echoed = await fetch_value(conn, "SELECT %(text)s::text", {"text": text})
        tables = await fetch_value(
            conn, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'poll'", None
        )
    assert echoed == text
    assert tables == 1, "dbmate migrations were not applied to the test database"


def test_kafka_message_is_consumed_back(kafka_topic, kafka_producer, kafka_consumer) -> None:
    payload = uuid.uuid4().bytes
    kafka_producer.send(kafka_topic, key=b"k", value=payload).get(timeout=10)
    consumer = kafka_consumer(kafka_topic)
    received: list[bytes] = []
    deadline = time.monotonic() + 30
    while not received and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            received.extend(record.value for record in records)
    assert received == [payload]


def test_valkey_pubsub_round_trip(valkey_client) -> None:
    channel = f"test:{uuid.uuid4().hex}"
    pubsub = valkey_client.pubsub()
    pubsub.subscribe(channel)
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    assert valkey_client.publish(channel, "hello") == 1
    message = pubsub.get_message(timeout=5)
    pubsub.close()
    assert message is not None
    assert (message["channel"], message["data"]) == (channel.encode(), b"hello")


async def test_health(api) -> None:
    response = await api.get("/api/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.stack_control
async def test_ready_names_valkey_while_it_is_down(api) -> None:
    async def ready() -> tuple[int, Any]:
        response = await api.get("/api/ready")
        return response.status_code, response.json()

    assert (await ready())[0] == 200
    valkey_service.stop(PROFILE)
    try:
        # The answer is cached for READY_CACHE_SECONDS: the outage shows once it expired.
        down = (503, {"status": "unavailable", "down": ["valkey"]})
        assert await eventually(ready, down, within=10) == down
    finally:
        valkey_service.start(PROFILE)
    assert await eventually(ready, (200, {"status": "ok"}), within=10) == (200, {"status": "ok"})


def _pids() -> dict[str, str]:
    root = PROFILE.data_dir
    return {
        "valkey": (root / "valkey" / "valkey.pid").read_text(),
        "kafka": (root / "kafka" / "kafka.pid").read_text(),
        "postgres": (root / "postgres" / "data" / "postmaster.pid").read_text().split()[0],
    }


def test_stack_start_twice_is_a_no_op() -> None:
    command = [sys.executable, "-m", "stack", "--profile", "test", "start"]
    subprocess.run(command, check=True, cwd=PROJECT_ROOT, capture_output=True)
    before = _pids()
    second = subprocess.run(command, check=True, cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert second.stdout.split("\n")[:3] == [
        "postgres  already running",
        "valkey    already running",
        "kafka     already running",
    ]
    assert _pids() == before
