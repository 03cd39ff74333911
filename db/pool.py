"""PostgreSQL connection pools: one async pool per event loop, one sync pool per process.

A psycopg async pool belongs to the loop that opened it, and ASGI servers give no
start-up hook, so each pool is opened on first use.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass

import psycopg
from django.conf import settings
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from db.singletons import PerLoop, PerProcess


def _pool_kwargs() -> dict[str, object]:
    return {
        "conninfo": settings.DATABASE_URL,
        "min_size": settings.DB_POOL_MIN_SIZE,
        "max_size": settings.DB_POOL_MAX_SIZE,
        "timeout": settings.DB_POOL_TIMEOUT_SECONDS,
        "kwargs": {"connect_timeout": 5},
    }


@dataclass(eq=False)
class _AsyncPool:
    """A loop's psycopg pool behind a gate of as many places as it has connections.

    A checkout that finds no idle connection in psycopg's pool joins its waiting queue: a
    condition, a timed wait and a task per waiting client, which under 16 concurrent
    requests on 10 connections doubled the CPU of a request with one query. Waiting at
    the gate (a semaphore: one future per waiter) instead means the pool always has a
    connection for whoever gets through, once it has opened them all.

    Its connections stay in autocommit mode: a read is one round trip with nothing to
    switch before and after, and `connection()` opens its transaction explicitly.
    """

    pool: AsyncConnectionPool
    gate: asyncio.Semaphore

    async def checkout(self) -> psycopg.AsyncConnection:
        if self.gate.locked():
            try:
                async with asyncio.timeout(settings.DB_POOL_TIMEOUT_SECONDS):
                    await self.gate.acquire()
            except TimeoutError:
                raise PoolTimeout(
                    f"couldn't get a connection after {settings.DB_POOL_TIMEOUT_SECONDS:.2f} sec"
                ) from None
        else:
            await self.gate.acquire()
        try:
            return await self.pool.getconn()
        except BaseException:
            self.gate.release()
            raise

    async def checkin(self, conn: psycopg.AsyncConnection) -> None:
        try:
            await self.pool.putconn(conn)
        finally:
            self.gate.release()


async def _open_async_pool() -> _AsyncPool:
    kwargs = _pool_kwargs()
    kwargs["kwargs"] = {**kwargs["kwargs"], "autocommit": True}  # type: ignore[dict-item]
    pool: AsyncConnectionPool = AsyncConnectionPool(open=False, **kwargs)  # type: ignore[arg-type]
    await pool.open(wait=False)
    return _AsyncPool(pool, asyncio.Semaphore(settings.DB_POOL_MAX_SIZE))


# The opening task is stored before anyone awaits it, so concurrent first callers share
# one pool.
_async_pools: PerLoop[asyncio.Task[_AsyncPool]] = PerLoop(
    lambda: asyncio.get_running_loop().create_task(_open_async_pool())
)
_sync_pool: PerProcess[ConnectionPool] = PerProcess(
    lambda: ConnectionPool(open=True, **_pool_kwargs()),  # type: ignore[arg-type]
    ConnectionPool.close,
)


async def get_async_pool() -> AsyncConnectionPool:
    """The running loop's pool, opened on first use (its connections are in autocommit)."""
    return (await _async_pools.get()).pool


@asynccontextmanager
async def _pooled() -> AsyncIterator[psycopg.AsyncConnection]:
    pooled = await _async_pools.get()
    conn = await pooled.checkout()
    try:
        yield conn
    finally:
        await pooled.checkin(conn)


@asynccontextmanager
async def connection() -> AsyncIterator[psycopg.AsyncConnection]:
    """A pooled connection in a transaction, committed on success, rolled back on error."""
    async with _pooled() as conn, conn.transaction():
        yield conn


@asynccontextmanager
async def autocommit_connection() -> AsyncIterator[psycopg.AsyncConnection]:
    """A pooled connection outside any transaction: one round trip per read statement."""
    async with _pooled() as conn:
        yield conn


async def close_async_pool() -> None:
    """Close the running loop's pool, if any."""
    task = _async_pools.pop()
    if task is not None:
        await (await task).pool.close()


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
