"""Watching one poll through the hub: what every live stream (SSE or WebSocket) sends."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator

import psycopg

from realtime.hub import Hub, HubClosed, Signal, Update
from votes.counts import read_counts
from votes.rows import PollCounts

log = logging.getLogger(__name__)


async def watch(
    hub: Hub, poll_id: int, initial: PollCounts, keepalive: float
) -> AsyncGenerator[Update | Signal, None]:
    """The counts now, then every newer version; KEEPALIVE when quiet; POLL_DELETED last.

    Ends without a word when the hub closes (process shutdown). Versions only grow: an
    update at or below the last one sent is dropped. The client is unregistered however
    the iteration ends (exhausted, closed or cancelled).
    """
    try:
        client = hub.join(poll_id)
    except HubClosed:
        return
    try:
        loop = asyncio.get_running_loop()
        first = Update.from_counts(initial)
        yield first
        sent = first.version
        deadline = loop.time() + keepalive
        # Counts published between reading `initial` and the subscription taking effect
        # reached nobody: read them again once the subscription is in place.
        await hub.subscribed(client)
        client.offer(await _current(poll_id, first))
        while True:
            item = await client.next(max(0.0, deadline - loop.time()))
            if item is None:
                yield Signal.KEEPALIVE
            elif isinstance(item, Update):
                if item.version <= sent:
                    continue
                sent = item.version
                yield item
            elif item is Signal.POLL_DELETED:
                yield item
                return
            else:
                return
            deadline = loop.time() + keepalive
    finally:
        hub.leave(client)


async def _current(poll_id: int, fallback: Update) -> Update | Signal:
    try:
        counts = await read_counts(poll_id)
    except (psycopg.Error, OSError) as exc:
        # The hub resyncs its clients when it had to reconnect; until then keep what we have.
        log.warning("counts of poll %d unavailable: %r", poll_id, exc)
        return fallback
    return Update.from_counts(counts) if counts else Signal.POLL_DELETED
