"""Server-Sent Events framing of a poll watch (API.md, "The stream")."""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing

from realtime.access import Viewer
from realtime.hub import Hub, Signal, Update
from realtime.watch import watch
from votes.rows import PollCounts

CONTENT_TYPE = "text/event-stream"
KEEPALIVE = b": keepalive\n\n"
POLL_DELETED = b"event: poll_deleted\ndata: {}\n\n"
ACCESS_REVOKED = b"event: access_revoked\ndata: {}\n\n"


@functools.lru_cache(maxsize=1024)
def vote_update_event(update: Update) -> bytes:
    """The `vote_update` event; rendered once per update, whatever the number of clients."""
    return b"event: vote_update\nid: %d\ndata: %s\n\n" % (update.version, update.data.encode())


def render(item: Update | Signal) -> bytes:
    """One watch item as an event (or comment) of the stream."""
    if isinstance(item, Update):
        return vote_update_event(item)
    if item is Signal.POLL_DELETED:
        return POLL_DELETED
    if item is Signal.ACCESS_REVOKED:
        return ACCESS_REVOKED
    return KEEPALIVE


async def event_stream(
    hub: Hub,
    viewer: Viewer,
    initial: PollCounts,
    keepalive: float,
    on_end: Callable[[], None] = lambda: None,
    write_now: Callable[[bytes], bool] | None = None,
) -> AsyncGenerator[bytes, None]:
    """The response body of a stream; `on_end` runs however it ends (also on disconnect).

    `write_now`, if given, writes a part of this body at once when it can (True): the
    watch then writes updates that way while it waits (see hub.Client)."""

    def express(update: Update) -> bool:
        assert write_now is not None
        return write_now(vote_update_event(update))

    try:
        watching = watch(hub, viewer, initial, keepalive, express if write_now else None)
        async with aclosing(watching) as items:
            async for item in items:
                yield render(item)
    finally:
        on_end()
