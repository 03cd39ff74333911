"""Issue 12, item 7: a flood of /api/ready cannot stall logins, and costs one evaluation
per READY_CACHE_SECONDS, not a connection, a thread and a Kafka client per request."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from feedapp.health import CachedReadiness
from stack.process import read_pid
from stack.profiles import get_profile
from tests.servers import start_server

PROFILE = get_profile("test")


@contextmanager
def kafka_frozen() -> Iterator[None]:
    """The test stack's Kafka stopped with SIGSTOP: it accepts connections, never answers."""
    pid = read_pid(PROFILE.data_dir / "kafka" / "kafka.pid")
    assert pid is not None, "Kafka of the test stack is not running"
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


async def test_concurrent_callers_share_one_evaluation() -> None:
    calls = 0

    async def evaluate() -> list[str]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.2)
        return ["kafka"]

    readiness = CachedReadiness(evaluate)
    answers = await asyncio.gather(*(readiness.down() for _ in range(200)))
    assert answers == [["kafka"]] * 200
    assert calls == 1
    assert await readiness.down() == ["kafka"]  # still fresh: no new evaluation
    assert calls == 1


@pytest.mark.stack_control
async def test_a_readiness_flood_with_kafka_frozen_does_not_stall_a_login(tmp_path) -> None:
    # Each evaluation waits up to a second for the frozen Kafka: no answer to /api/ready
    # can come sooner, so a login answered before any of them took less than that.
    server = start_server(
        "uvicorn", tmp_path / "server.log", env={"READY_CHECK_TIMEOUT_SECONDS": "1"}
    )
    limits = httpx.Limits(max_connections=300, max_keepalive_connections=300)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=120, limits=limits) as client:
            name = f"flood_{int(time.time() * 1000) % 10**9}"
            identity = {"username": name, "email": f"{name}@example.com", "password": "a-password"}
            assert (await client.post("/api/user/register", json=identity)).status_code == 201
            login = {"username": name, "password": "a-password"}
            client.cookies.clear()

            answered: list[float] = []

            async def ready() -> int:
                response = await client.get("/api/ready")
                answered.append(time.monotonic())
                return response.status_code

            with kafka_frozen():
                flood = [asyncio.create_task(ready()) for _ in range(200)]
                await asyncio.sleep(0.05)  # the flood is on its way
                response = await client.post("/api/user/login", json=login)
                logged_in = time.monotonic()
                statuses = await asyncio.gather(*flood)
    finally:
        server.stop()
    assert response.status_code == 204, server.log_tail()
    assert statuses == [503] * 200  # Kafka did not answer
    assert logged_in < min(answered), (
        f"the login waited {logged_in - min(answered):.2f} s past the first readiness answer"
    )
