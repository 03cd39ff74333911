"""Vote counts: exact in PostgreSQL, cached with their version in Valkey.

Valkey holds, per poll, the absolute counts and the counts version. A script writes
them only when the version is newer than the cached one, so late or repeated writers
can never roll the cache back; the consumer's writes also publish the update on the
poll's channel in the same step. Valkey is only a cache: a miss (flush, restart,
eviction) is rebuilt from PostgreSQL on the next read. A deleted poll's key is a
tombstone that the script refuses to overwrite.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
import psycopg
import valkey
import valkey.asyncio as avalkey
from django.conf import settings
from valkey.exceptions import ValkeyError

from db.pool import run_read
from db.sql import fetch_all, fetch_all_sync, fetch_one, queries
from db.valkey import LuaScript, get_async_valkey
from feedapp.outages import VALKEY, VALKEY_CONSEQUENCE
from feedapp.rendering import dumps
from votes import pubsub
from votes.rows import PollCounts

log = logging.getLogger(__name__)
Q = queries("votes")

STORE_IF_NEWER = LuaScript("counts_store_if_newer")


def counts_key(poll_id: int) -> str:
    return f"counts:poll:{poll_id}"


def _script_args(counts: PollCounts, publish: bool) -> list[Any]:
    channel, message = pubsub.encode(counts) if publish else ("", "")
    return [
        counts.version,
        dumps(counts.as_list()),
        settings.COUNTS_CACHE_TTL_SECONDS,
        channel,
        message,
    ]


def store_counts(client: valkey.Valkey, counts: list[PollCounts]) -> None:
    """Cache and publish absolute counts (consumer side), refusing older versions."""
    if not counts:
        return
    script = STORE_IF_NEWER.on(client)
    with client.pipeline(transaction=False) as pipe:
        for poll in counts:
            script(
                keys=[counts_key(poll.poll_id)], args=_script_args(poll, publish=True), client=pipe
            )
        pipe.execute()


def read_counts_sync(conn: psycopg.Connection, poll_ids: list[int]) -> list[PollCounts]:
    """Absolute counts of these polls from PostgreSQL (for synchronous callers)."""
    return fetch_all_sync(conn, Q["poll_counts"], {"poll_ids": poll_ids}, PollCounts)


async def read_counts(poll_id: int) -> PollCounts | None:
    """The poll's counts from Valkey, rebuilt from PostgreSQL on a miss; None if no poll."""
    client: avalkey.Valkey | None = get_async_valkey()
    try:
        # valkey-py types its commands for both clients at once.
        version, data = await client.hmget(  # type: ignore[misc, union-attr]
            counts_key(poll_id), ["version", "counts"]
        )
        VALKEY.ended()
        if version is not None and data is not None:
            pairs = orjson.loads(data)
            return PollCounts(
                poll_id,
                int(version),
                [pair["vote_option_id"] for pair in pairs],
                [pair["vote_count"] for pair in pairs],
            )
    except (ValkeyError, OSError) as exc:
        VALKEY.failed(repr(exc), VALKEY_CONSEQUENCE)
        client = None
    return await _rebuild(poll_id, client)


async def read_counts_json(poll_id: int) -> bytes | None:
    """The poll's counts as the API's JSON list (GET /api/vote/{id}), straight from the
    cache, which holds them in that shape; rebuilt from PostgreSQL on a miss; None if no
    poll."""
    client: avalkey.Valkey | None = get_async_valkey()
    try:
        data = await client.hget(counts_key(poll_id), "counts")  # type: ignore[misc, union-attr]
        VALKEY.ended()
        if data is not None:
            return bytes(data)
    except (ValkeyError, OSError) as exc:
        VALKEY.failed(repr(exc), VALKEY_CONSEQUENCE)
        client = None
    counts = await _rebuild(poll_id, client)
    return dumps(counts.as_list()) if counts is not None else None


async def _rebuild(poll_id: int, client: avalkey.Valkey | None) -> PollCounts | None:
    """The counts from PostgreSQL, put back into the cache (when it is reachable)."""
    params = {"poll_ids": [poll_id]}
    counts = await run_read(lambda conn: fetch_one(conn, Q["poll_counts"], params, PollCounts))
    if counts is not None and client is not None:
        try:
            script = STORE_IF_NEWER.on_async(client)
            await script(keys=[counts_key(poll_id)], args=_script_args(counts, publish=False))
        except (ValkeyError, OSError) as exc:
            VALKEY.failed(repr(exc), VALKEY_CONSEQUENCE)
            log.info("could not refill the counts cache of poll %d: %r", poll_id, exc)
    return counts


async def read_counts_many(poll_ids: list[int]) -> list[PollCounts]:
    """Absolute counts of several polls straight from PostgreSQL."""
    params = {"poll_ids": poll_ids}
    return await run_read(lambda conn: fetch_all(conn, Q["poll_counts"], params, PollCounts))


async def forget_counts(poll_id: int) -> None:
    """Replace a deleted poll's cached counts with a tombstone that refuses later writes.

    The consumer writes counts after its transaction committed; a batch that committed
    just before the deletion (or while Valkey was down) would otherwise write the counts
    of a poll that no longer exists, and publish a vote_update after poll_deleted. The
    tombstone lives as long as cached counts would.
    """
    key = counts_key(poll_id)
    async with get_async_valkey().pipeline(transaction=True) as pipe:
        pipe.delete(key)
        pipe.hset(key, "deleted", "1")
        pipe.expire(key, settings.COUNTS_CACHE_TTL_SECONDS)
        await pipe.execute()


async def forget_deleted_poll_counts(sender: object, poll_id: int, **kwargs: Any) -> None:
    """polls.signals.poll_deleted receiver: a deleted poll's cached counts go with it."""
    await forget_counts(poll_id)
