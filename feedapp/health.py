"""Service routes: liveness and readiness."""

from __future__ import annotations

import asyncio
import logging
import time

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest
from ninja import Router, Schema, Status

from db.pool import autocommit_connection
from db.valkey import get_async_valkey
from votes import broker, producer

log = logging.getLogger(__name__)
router = Router(tags=["service"])


class StatusOk(Schema):
    status: str


class NotReady(Schema):
    status: str
    down: list[str]


async def _postgres_ok() -> None:
    async with autocommit_connection() as conn:
        await conn.execute("SELECT 1")


async def _valkey_ok() -> None:
    if not await get_async_valkey().ping():
        raise ConnectionError("no PONG")


async def _kafka_ok() -> None:
    timeout = settings.READY_CHECK_TIMEOUT_SECONDS
    # thread_sensitive=False: a blocking Kafka call must not queue behind other sync work.
    if not await sync_to_async(broker.cluster_answers, thread_sensitive=False)(timeout):
        raise ConnectionError("no metadata answer")


async def _producer_ok() -> None:
    # The broker may answer metadata while this process's producer cannot deliver.
    if not producer.can_deliver():
        raise ConnectionError("votes are not being delivered")


CHECKS = {
    "postgresql": _postgres_ok,
    "valkey": _valkey_ok,
    "kafka": _kafka_ok,
    "vote_producer": _producer_ok,
}
# A load balancer may ask often; the checks run at most this often per process.
READY_CACHE_SECONDS = 1.0
_last_answer: tuple[float, list[str]] | None = None
_running: asyncio.Future[list[str]] | None = None


async def _down() -> list[str]:
    """The names of the checks that fail now."""
    timeout = settings.READY_CHECK_TIMEOUT_SECONDS + 0.5
    results = await asyncio.gather(
        *(asyncio.wait_for(check(), timeout) for check in CHECKS.values()),
        return_exceptions=True,
    )
    down = []
    for name, result in zip(CHECKS, results, strict=True):
        if result is not None:
            down.append(name)
            log.warning("readiness: %s is down: %r", name, result)
    return down


async def _cached_down() -> list[str]:
    """`_down()`, at most READY_CACHE_SECONDS old; concurrent callers share one run."""
    global _last_answer, _running
    now = time.monotonic()
    if _last_answer is not None and now - _last_answer[0] < READY_CACHE_SECONDS:
        return _last_answer[1]
    if _running is None or _running.get_loop() is not asyncio.get_running_loop():
        _running = asyncio.ensure_future(_down())
    running = _running
    try:
        down = await asyncio.shield(running)
    finally:
        if running.done() and _running is running:
            _running = None
    _last_answer = (time.monotonic(), down)
    return down


@router.get("/health", response=StatusOk, operation_id="check_health", summary="Liveness")
async def health(request: HttpRequest) -> StatusOk:
    """200 while the process runs."""
    return StatusOk(status="ok")


@router.get(
    "/ready",
    response={200: StatusOk, 503: NotReady},
    operation_id="check_readiness",
    summary="Readiness",
)
async def ready(request: HttpRequest) -> Status[StatusOk | NotReady]:
    """200 when PostgreSQL, Valkey and Kafka answer and this process's vote producer can
    deliver; else 503 naming what is down. Answers are at most a second old."""
    down = await _cached_down()
    if down:
        return Status(503, NotReady(status="unavailable", down=down))
    return Status(200, StatusOk(status="ok"))
