"""Watching one poll through the hub: what every live stream (SSE or WebSocket) sends."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator

import psycopg
from django.conf import settings

from feedapp.errors import Unavailable
from realtime.access import Viewer, next_check_at
from realtime.hub import Express, Hub, HubClosed, Signal, Update
from votes.counts import read_counts
from votes.rows import PollCounts

log = logging.getLogger(__name__)


async def watch(
    hub: Hub,
    viewer: Viewer,
    initial: PollCounts,
    keepalive: float,
    express: Express | None = None,
) -> AsyncGenerator[Update | Signal, None]:
    """The counts now, then every newer version; KEEPALIVE when quiet; POLL_DELETED or
    ACCESS_REVOKED last.

    The viewer's right to watch is asked again at the latest every
    STREAM_RECHECK_SECONDS, and before an update once the last answer is older than
    AUTH_USER_CACHE_SECONDS; when it is gone, or the viewer's token expires, the stream
    ends with ACCESS_REVOKED (realtime.access). Ends without a word when the hub closes
    (process shutdown). Versions only grow: an update at or below the last one sent is
    dropped. The client is unregistered however the iteration ends (exhausted, closed
    or cancelled).

    With `express` (how the transport writes an update at once, see hub.Client), updates
    that come while the stream waits are written in place until the next check of the
    viewer's right is due; what was written so counts as sent, and as the stream's
    last sign of life for its keepalive.
    """
    poll_id = viewer.poll_id
    try:
        client = hub.join(poll_id, express)
    except HubClosed:
        return
    try:
        loop = asyncio.get_running_loop()
        first = Update.from_counts(initial)
        yield first
        sent = first.version
        deadline = loop.time() + keepalive
        recheck, fresh_for = settings.STREAM_RECHECK_SECONDS, settings.AUTH_USER_CACHE_SECONDS
        checked_at = loop.time()
        next_check = next_check_at(checked_at, recheck)
        ends_at = loop.time() + viewer.seconds_left()
        # Counts published between reading `initial` and the subscription taking effect
        # reached nobody: read them again once the subscription is in place.
        await hub.subscribed(client)
        client.offer(await _current(poll_id, first))
        while True:
            wake = min(deadline, next_check, ends_at)
            # In place only while no check would be due (see the `due` test below).
            express_until = min(next_check, checked_at + fresh_for, ends_at)
            item = await client.next(max(0.0, wake - loop.time()), express_until)
            now = loop.time()
            if client.written > sent:
                sent = client.written
                deadline = max(deadline, client.written_at + keepalive)
            if now >= ends_at:
                yield Signal.ACCESS_REVOKED
                return
            news = isinstance(item, Update) and item.version > sent
            due = now >= next_check or (news and now - checked_at >= fresh_for)
            if due and (item is None or isinstance(item, Update)):
                allowed = await viewer.may_still_watch()
                if allowed is False:
                    yield Signal.ACCESS_REVOKED
                    return
                if allowed is not None:
                    checked_at = now
                next_check = next_check_at(loop.time(), recheck)
            if item is None:
                if now < deadline:
                    continue  # woken only to check
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
    except (psycopg.Error, OSError, Unavailable) as exc:
        # The hub resyncs its clients when it had to reconnect; until then keep what we have.
        log.warning("counts of poll %d unavailable: %r", poll_id, exc)
        return fallback
    return Update.from_counts(counts) if counts else Signal.POLL_DELETED
