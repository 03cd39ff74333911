"""PostgreSQL connection pools: one async pool per event loop, one sync pool per process.

A psycopg async pool belongs to the loop that opened it, and ASGI servers give no
start-up hook, so each pool is opened on first use.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import psycopg
from django.conf import settings
from psycopg_pool import AsyncConnectionPool, ConnectionPool

_async_pools: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, asyncio.Task[AsyncConnectionPool]
] = weakref.WeakKeyDictionary()
_sync_pool: ConnectionPool | None = None
_sync_lock = threading.Lock()


def _pool_kwargs() -> dict[str, object]:
    return {
        "conninfo": settings.DATABASE_URL,
        "min_size": settings.DB_POOL_MIN_SIZE,
        "max_size": settings.DB_POOL_MAX_SIZE,
        "timeout": settings.DB_POOL_TIMEOUT_SECONDS,
        "kwargs": {"connect_timeout": 5},
    }


async def _open_async_pool() -> AsyncConnectionPool:
    pool: AsyncConnectionPool = AsyncConnectionPool(open=False, **_pool_kwargs())  # type: ignore[arg-type]
    await pool.open(wait=False)
    return pool


async def get_async_pool() -> AsyncConnectionPool:
    """The running loop's pool, opened on first use."""
    loop = asyncio.get_running_loop()
    task = _async_pools.get(loop)
    if task is None:
        # Store the task before awaiting so concurrent first callers share one pool.
        task = loop.create_task(_open_async_pool())
        _async_pools[loop] = task
    return await task


@asynccontextmanager
async def connection() -> AsyncIterator[psycopg.AsyncConnection]:
    """A pooled connection in a transaction, committed on success, rolled back on error."""
    pool = await get_async_pool()
    async with pool.connection() as conn:
        yield conn


@asynccontextmanager
async def autocommit_connection() -> AsyncIterator[psycopg.AsyncConnection]:
    """A pooled connection outside any transaction: one round trip per read statement."""
    pool = await get_async_pool()
    async with pool.connection() as conn:
        await conn.set_autocommit(True)
        try:
            yield conn
        finally:
            await conn.set_autocommit(False)


async def close_async_pool() -> None:
    """Close the running loop's pool, if any."""
    task = _async_pools.pop(asyncio.get_running_loop(), None)
    if task is not None:
        await (await task).close()


def get_sync_pool() -> ConnectionPool:
    """The process's pool for synchronous code (management commands, the consumer)."""
    global _sync_pool
    with _sync_lock:
        if _sync_pool is None:
            _sync_pool = ConnectionPool(open=True, **_pool_kwargs())  # type: ignore[arg-type]
        return _sync_pool


@contextmanager
def sync_connection() -> Iterator[psycopg.Connection]:
    """A pooled synchronous connection in a transaction."""
    with get_sync_pool().connection() as conn:
        yield conn


def close_sync_pool() -> None:
    global _sync_pool
    with _sync_lock:
        if _sync_pool is not None:
            _sync_pool.close()
            _sync_pool = None
