"""Restarting the test stack's PostgreSQL, and dropping this process's dead connections."""

from __future__ import annotations

import asyncio

from asgiref.sync import sync_to_async
from django.db import connections

from db.pool import close_async_pool, close_sync_pool
from db.sync_bridge import run_sync
from stack import postgres as postgres_service
from stack.profiles import get_profile


def restart_postgres() -> None:
    """Stop and start the test stack's PostgreSQL: every open connection dies."""
    profile = get_profile("test")
    postgres_service.stop(profile)
    postgres_service.start(profile)


async def drop_dead_connections() -> None:
    """Let this process start from fresh connections after a restart: the SQL layer's
    pools, and Django's connection held by the thread the in-process test client runs
    the admin's views on (it keeps it between requests, where a server's request
    threads return theirs to the pool)."""
    await close_async_pool()
    await asyncio.to_thread(run_sync, close_async_pool())  # the sync bridge loop's pool
    close_sync_pool()
    await sync_to_async(connections.close_all)()
