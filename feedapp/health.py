"""Service routes: liveness and readiness."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from ninja import Router, Schema, Status

from db.pool import autocommit_connection
from db.singletons import PerLoop
from db.valkey import get_async_valkey
from feedapp.rendering import dumps, raw_json_answer
from votes import broker, producer

log = logging.getLogger(__name__)
router = Router(tags=["service"])


class StatusOk(Schema):
    status: str


_OK = dumps({"status": "ok"})


class NotReady(Schema):
    status: str
    down: list[str]


async def _postgres_ok() -> None:
    async with autocommit_connection() as conn:
        await conn.execute("SELECT 1")


async def _valkey_ok() -> None:
    if not await get_async_valkey().ping():
        raise ConnectionError("no PONG")


# The Kafka probe blocks, so it runs in a thread: one of its own, never the loop's default
# pool, which password hashing (Argon2) also uses. The probe keeps its admin client.
_kafka_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feedapp-ready-kafka")
_kafka_probe = broker.ClusterProbe()


async def _kafka_ok() -> None:
    timeout = settings.READY_CHECK_TIMEOUT_SECONDS
    loop = asyncio.get_running_loop()
    if not await loop.run_in_executor(_kafka_thread, _kafka_probe.answers, timeout):
        raise ConnectionError("no metadata answer")


async def _producer_ok() -> None:
    # The broker may answer metadata while this process's producer cannot deliver.
    if not producer.can_deliver():
        raise ConnectionError("votes are not being delivered")


async def _evaluate() -> list[str]:
    """What is down now (empty: ready to serve)."""
    checks = {
        "postgresql": _postgres_ok(),
        "valkey": _valkey_ok(),
        "kafka": _kafka_ok(),
        "vote_producer": _producer_ok(),
    }
    timeout = settings.READY_CHECK_TIMEOUT_SECONDS + 0.5
    results = await asyncio.gather(
        *(asyncio.wait_for(check, timeout) for check in checks.values()), return_exceptions=True
    )
    down = [name for name, result in zip(checks, results, strict=True) if result is not None]
    for name, result in zip(checks, results, strict=True):
        if result is not None:
            log.warning("readiness: %s is down: %r", name, result)
    return down


class CachedReadiness:
    """The readiness answer, evaluated by one caller at a time and reused by everyone for
    READY_CACHE_SECONDS: a flood of /api/ready costs one evaluation per interval, not one
    connection, thread and Kafka client per request."""

    def __init__(self, evaluate: Callable[[], Awaitable[list[str]]]) -> None:
        self._evaluate = evaluate
        self._answer: tuple[float, list[str]] | None = None
        self._running: asyncio.Task[list[str]] | None = None
        self.evaluations = 0  # for tests and monitoring

    async def down(self) -> list[str]:
        """What is down (empty when ready), at most READY_CACHE_SECONDS old."""
        loop = asyncio.get_running_loop()
        answer = self._answer
        if answer is not None and loop.time() - answer[0] < settings.READY_CACHE_SECONDS:
            return answer[1]
        if self._running is None or self._running.done():
            # A context of its own: it serves many requests, not the one that started it.
            self._running = loop.create_task(self._refresh(), context=contextvars.Context())
        # Shielded: a caller that leaves does not cancel the others' answer.
        return await asyncio.shield(self._running)

    async def _refresh(self) -> list[str]:
        self.evaluations += 1
        down = await self._evaluate()
        self._answer = (asyncio.get_running_loop().time(), down)
        return down


_readiness: PerLoop[CachedReadiness] = PerLoop(lambda: CachedReadiness(_evaluate))


def get_readiness() -> CachedReadiness:
    """The running loop's readiness answer."""
    return _readiness.get()


@router.get("/health", response=StatusOk, operation_id="check_health", summary="Liveness")
async def health(request: HttpRequest) -> HttpResponse:
    """200 while the process runs."""
    return raw_json_answer(_OK)


@router.get(
    "/ready",
    response={200: StatusOk, 503: NotReady},
    operation_id="check_readiness",
    summary="Readiness",
)
async def ready(request: HttpRequest) -> Status[StatusOk | NotReady]:
    """200 when PostgreSQL, Valkey and Kafka answer and this process's vote producer can
    deliver; else 503 naming what is down. The answer is at most READY_CACHE_SECONDS
    old."""
    down = await get_readiness().down()
    if down:
        return Status(503, NotReady(status="unavailable", down=down))
    return Status(200, StatusOk(status="ok"))
