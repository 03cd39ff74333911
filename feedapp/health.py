"""Service routes: liveness and readiness."""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from ninja import Router, Schema, Status

from db.pool import get_async_pool
from db.valkey import get_async_valkey
from feedapp.rendering import dumps, raw_json_answer
from votes import broker

log = logging.getLogger(__name__)
router = Router(tags=["service"])


class StatusOk(Schema):
    status: str


_OK = dumps({"status": "ok"})


class NotReady(Schema):
    status: str
    down: list[str]


async def _postgres_ok() -> None:
    pool = await get_async_pool()
    async with pool.connection() as conn:
        await conn.execute("SELECT 1")


async def _valkey_ok() -> None:
    if not await get_async_valkey().ping():
        raise ConnectionError("no PONG")


async def _kafka_ok() -> None:
    timeout = settings.READY_CHECK_TIMEOUT_SECONDS
    # thread_sensitive=False: a blocking Kafka call must not queue behind other sync work.
    if not await sync_to_async(broker.cluster_answers, thread_sensitive=False)(timeout):
        raise ConnectionError("no metadata answer")


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
    """200 when PostgreSQL, Valkey and Kafka answer; else 503 naming what is down."""
    checks = {"postgresql": _postgres_ok(), "valkey": _valkey_ok(), "kafka": _kafka_ok()}
    timeout = settings.READY_CHECK_TIMEOUT_SECONDS + 0.5
    results = await asyncio.gather(
        *(asyncio.wait_for(check, timeout) for check in checks.values()), return_exceptions=True
    )
    down = [name for name, result in zip(checks, results, strict=True) if result is not None]
    for name, result in zip(checks, results, strict=True):
        if result is not None:
            log.warning("readiness: %s is down: %r", name, result)
    if down:
        return Status(503, NotReady(status="unavailable", down=down))
    return Status(200, StatusOk(status="ok"))
