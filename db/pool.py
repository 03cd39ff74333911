"""PostgreSQL connection pools: one async pool per event loop, one sync pool per process.

A psycopg async pool belongs to the loop that opened it, and ASGI servers give no
start-up hook, so each pool is opened on first use.

While PostgreSQL is down or restarting, the async helpers raise `feedapp.errors.Unavailable`
(503 with Retry-After) instead of psycopg's errors, and log one warning per outage, not one
per request. A connection the server closed while it sat in the pool (a restart closes
them all) is noticed before it is handed out, without a round trip, and replaced.
`run_read` also retries a read once on a fresh connection when its connection breaks
during the read.
"""

from __future__ import annotations

import asyncio
import logging
import select
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import TypeVar

import psycopg
from django.conf import settings
from psycopg import errors
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from db.singletons import PerLoop, PerProcess
from feedapp.errors import Unavailable
from feedapp.outages import POSTGRESQL

log = logging.getLogger(__name__)
T = TypeVar("T")

UNAVAILABLE_MESSAGE = "The database is unavailable; please try again shortly"
BUSY_MESSAGE = "The database was busy with a conflicting change; please try again"
TRANSACTION_ATTEMPTS = 3
OUTAGE_CONSEQUENCE = "requests that need it are answered 503 until it returns"
# While an outage is known, a request waits this long for a connection, not the full
# pool timeout: the pool keeps reconnecting in the background meanwhile.
OUTAGE_WAIT_SECONDS = 1.0
# PostgreSQL rolled the transaction back to break a deadlock or a serialization conflict.
ROLLED_BACK = (errors.DeadlockDetected, errors.SerializationFailure)
# Server states that end or refuse a session: shutdown, crash recovery, start-up.
_SERVER_GONE = (errors.AdminShutdown, errors.CrashShutdown, errors.CannotConnectNow)


class ConnectionLost(Unavailable):
    """The connection broke while in use (the server went away)."""


class TransactionConflict(Unavailable):
    """PostgreSQL rolled the transaction back to break a deadlock or a serialization
    conflict; running it again is the documented remedy (`run_transaction` does)."""


def database_down() -> bool:
    """True while the last attempt to use PostgreSQL failed."""
    return POSTGRESQL.down


def _pool_kwargs() -> dict[str, object]:
    return {
        "conninfo": settings.DATABASE_URL,
        "min_size": settings.DB_POOL_MIN_SIZE,
        "max_size": settings.DB_POOL_MAX_SIZE,
        "timeout": settings.DB_POOL_TIMEOUT_SECONDS,
        "kwargs": {"connect_timeout": 5},
    }


def _outage_wait() -> float | None:
    """How long a checkout waits during a known outage (None: the pool's own timeout).
    Asked anew each time: finding a closed connection begins an outage, and meanwhile the
    pool reconnects in the background."""
    return OUTAGE_WAIT_SECONDS if database_down() else None


def _closed_by_server(conn: psycopg.AsyncConnection) -> bool:
    """True when an idle connection is unusable: closed, or the server has spoken on it
    (an idle session receives nothing but a shutdown notice or the end of the stream)."""
    if conn.closed or conn.broken:
        return True
    poller = select.poll()  # not select(): a busy web process has descriptors past 1024
    poller.register(conn.pgconn.socket, select.POLLIN)
    return bool(poller.poll(0))


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
        wait = _outage_wait() or settings.DB_POOL_TIMEOUT_SECONDS
        if self.gate.locked():
            try:
                async with asyncio.timeout(wait):
                    await self.gate.acquire()
            except TimeoutError:
                raise PoolTimeout(f"couldn't get a connection after {wait:.2f} sec") from None
        else:
            await self.gate.acquire()
        try:
            return await self._live_connection()
        except BaseException:
            self.gate.release()
            raise

    async def _live_connection(self) -> psycopg.AsyncConnection:
        """A pooled connection that the server has not closed."""
        for _ in range(self.pool.max_size):
            conn = await self.pool.getconn(_outage_wait())
            if not _closed_by_server(conn):
                return conn
            # A restart closes every pooled connection: an outage begins (it ends with the
            # first query that works). Closed here, the pool replaces it in the background.
            POSTGRESQL.failed(
                "the server closed pooled connections", OUTAGE_CONSEQUENCE, count=False
            )
            await conn.close()
            await self.pool.putconn(conn)
        return await self.pool.getconn(_outage_wait())

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
    """A live connection from the loop's pool, with PostgreSQL's outage errors turned into
    `Unavailable` (one warning per outage) and a rolled-back conflict into
    `TransactionConflict`."""
    pooled = await _async_pools.get()
    try:
        conn = await pooled.checkout()
    except (PoolTimeout, psycopg.OperationalError) as exc:
        POSTGRESQL.failed(exc, OUTAGE_CONSEQUENCE)
        raise Unavailable(UNAVAILABLE_MESSAGE) from exc
    try:
        yield conn
    except ROLLED_BACK as exc:
        raise TransactionConflict(BUSY_MESSAGE) from exc
    except psycopg.OperationalError as exc:
        if conn.broken or isinstance(exc, _SERVER_GONE):
            POSTGRESQL.failed(exc, OUTAGE_CONSEQUENCE)
            raise ConnectionLost(UNAVAILABLE_MESSAGE) from exc
        raise
    finally:
        await pooled.checkin(conn)
    POSTGRESQL.ended()


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


async def run_read(read: Callable[[psycopg.AsyncConnection], Awaitable[T]]) -> T:
    """Run `read` on an autocommit connection; if that connection breaks during it, once
    more on a fresh one. Only for work without side effects: a read, or a check."""
    try:
        async with autocommit_connection() as conn:
            return await read(conn)
    except ConnectionLost:
        log.info("a pooled connection broke during a read; retrying on a fresh one")
    async with autocommit_connection() as conn:
        return await read(conn)


async def run_transaction(work: Callable[[psycopg.AsyncConnection], Awaitable[T]]) -> T:
    """Run `work` in one transaction; when PostgreSQL rolls it back to break a deadlock
    or a serialization conflict, run it again (up to TRANSACTION_ATTEMPTS in all). `work`
    must do nothing outside the transaction that it could not repeat."""
    for attempt in range(1, TRANSACTION_ATTEMPTS + 1):
        try:
            async with connection() as conn:
                return await work(conn)
        except TransactionConflict as exc:
            if attempt == TRANSACTION_ATTEMPTS:
                raise
            log.info("transaction rolled back (%r); running it again", exc.__cause__)
    raise AssertionError("unreachable")


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
