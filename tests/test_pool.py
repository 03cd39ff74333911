"""The async pool's gate: as many checkouts at once as connections, the rest wait their turn."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest
from django.conf import settings
from django.test import override_settings
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg_pool import PoolTimeout

from db.pool import autocommit_connection, connection, database_down
from feedapp.errors import Unavailable


async def test_more_requests_than_connections_all_get_one_in_turn() -> None:
    out = peak = 0

    async def query() -> int:
        nonlocal out, peak
        async with autocommit_connection() as conn:
            out += 1
            peak = max(peak, out)
            await asyncio.sleep(0.01)
            cur = await conn.execute("SELECT 1")
            row = await cur.fetchone()
            out -= 1
            return int(row[0]) if row else 0

    results = await asyncio.gather(*(query() for _ in range(settings.DB_POOL_MAX_SIZE * 4)))
    assert results == [1] * (settings.DB_POOL_MAX_SIZE * 4)
    assert peak == settings.DB_POOL_MAX_SIZE


async def test_a_checkout_gives_up_after_the_pool_timeout() -> None:
    async with contextlib.AsyncExitStack() as held:
        for _ in range(settings.DB_POOL_MAX_SIZE):
            await held.enter_async_context(autocommit_connection())
        # A pool with no place for the request answers 503 (Unavailable), not a traceback.
        with override_settings(DB_POOL_TIMEOUT_SECONDS=0.2), pytest.raises(Unavailable) as err:
            async with autocommit_connection():
                pass
        assert isinstance(err.value.__cause__, PoolTimeout)
    # Every place was given back: the pool serves again.
    async with autocommit_connection() as conn:
        assert await (await conn.execute("SELECT 1")).fetchone() == (1,)
    assert not database_down()


async def test_transactions_commit_or_roll_back_and_reads_autocommit() -> None:
    name = sql.Identifier(f"pool_check_{uuid.uuid4().hex[:8]}")
    async with autocommit_connection() as conn:
        assert conn.autocommit
        await conn.execute(sql.SQL("CREATE TABLE {} (n int)").format(name))
    try:
        with pytest.raises(RuntimeError):
            async with connection() as conn:
                await conn.execute(sql.SQL("INSERT INTO {} VALUES (1)").format(name))
                assert conn.info.transaction_status == TransactionStatus.INTRANS
                raise RuntimeError("roll back")
        async with connection() as conn:
            await conn.execute(sql.SQL("INSERT INTO {} VALUES (2)").format(name))
        async with autocommit_connection() as conn:
            cur = await conn.execute(sql.SQL("SELECT n FROM {}").format(name))
            assert await cur.fetchall() == [(2,)]
            assert conn.info.transaction_status == TransactionStatus.IDLE
    finally:
        async with autocommit_connection() as conn:
            await conn.execute(sql.SQL("DROP TABLE {}").format(name))
