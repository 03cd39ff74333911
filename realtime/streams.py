"""Opening a live stream of a poll's counts: the one use case behind SSE and WebSocket.

Both transports call `open_watch` with who is calling and from where, then only render
what `Watch.items` yields in their own framing. The checks, in order: the poll exists
and the caller may view it (its counts are read at the same time), the process is not
shutting down, and the caller is under the stream limits (a slot is taken). While the
stream runs, the right to watch is asked again (realtime.access), and the stream ends
with ACCESS_REVOKED once it is gone or the caller's token expires.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass

from accounts.auth import Session
from db.ids import MAX_ID
from feedapp.errors import Unavailable
from polls.errors import PollNotFound
from realtime.access import Viewer
from realtime.hub import Hub, Signal, Update, get_hub
from realtime.limits import Slot, get_slots, subject_for
from realtime.watch import watch
from votes.rows import PollCounts
from votes.services import get_visible_counts


@dataclass(eq=False)
class Watch:
    """An opened stream: who watches which poll, its counts when opened, and the slot it
    holds."""

    hub: Hub
    viewer: Viewer
    counts: PollCounts
    slot: Slot

    @property
    def poll_id(self) -> int:
        return self.viewer.poll_id

    def items(self, keepalive: float) -> AsyncGenerator[Update | Signal, None]:
        """What the stream sends (see realtime.watch.watch)."""
        return watch(self.hub, self.viewer, self.counts, keepalive)

    def close(self) -> None:
        """Give the slot back once the stream ended (idempotent)."""
        self.slot.release()


async def open_watch(session: Session | None, address: str, poll_id: int) -> Watch:
    """Check that the caller may watch the poll now and take its place under the limits.

    `session` None is an anonymous caller, counted by `address`. Raises PollNotFound (also
    for a poll the caller may not view, or an id out of range), Unavailable while the
    process shuts down, and TooManyRequests past a stream limit. The caller must
    `close()` the watch when the stream ends; a watch dropped unclosed gives its slot
    back when it is collected (see realtime.limits.Slot).
    """
    if not 0 < poll_id <= MAX_ID:
        raise PollNotFound()
    user = session.user if session else None
    counts = await get_visible_counts(user, poll_id)
    hub = get_hub()
    if hub.closed:
        raise Unavailable("The server is shutting down; reconnect")
    slot = await get_slots().acquire(subject_for(user.id if user else None, address))
    return Watch(hub, Viewer(poll_id, session), counts, slot)
