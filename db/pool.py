"""PostgreSQL connection pools: one async pool per event loop, one sync pool per process.

A psycopg async pool belongs to the loop that opened it, and ASGI servers give no
start-up hook, so each pool is opened on first use.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import psycopg
from django.conf import settings
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from db.singletons import PerLoop, PerProcess


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


# The opening task is stored before anyone awaits it, so concurrent first callers share
# one pool.
_async_pools: PerLoop[asyncio.Task[AsyncConnectionPool]] = PerLoop(
    lambda: asyncio.get_running_loop().create_task(_open_async_pool())
)
_sync_pool: PerProcess[ConnectionPool] = PerProcess(
    lambda: ConnectionPool(open=True, **_pool_kwargs()),  # type: ignore[arg-type]
    ConnectionPool.close,
)


async def get_async_pool() -> AsyncConnectionPool:
    """The running loop's pool, opened on first use."""
    return await _async_pools.get()


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
    task = _async_pools.pop()
    if task is not None:
        await (await task).close()


def get_sync_pool() -> ConnectionPool:
    """The process's pool for synchronous code (management commands, the consumer)."""
    return _sync_pool.get()


@contextmanager
def sync_connection() -> Iterator[psycopg.Connection]:
    """A pooled synchronous connection in a transaction."""
    with get_sync_pool().connection() as conn:
        yield conn


def close_sync_pool() -> None:
    _sync_pool.close()
