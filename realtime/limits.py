"""Connection limits of live streams: per process, and per user across all processes.

The per-process limit (SSE_MAX_STREAMS_PER_PROCESS) protects what one process owns
(sockets, memory) and is counted locally. The per-user limit (SSE_MAX_STREAMS_PER_USER;
anonymous callers are counted per client address) holds across every web process, so a
user's sixth stream is refused whichever process it reaches: each stream holds a lease,
a member of a sorted set per user in Valkey scored with its expiry. A process renews its
streams' leases in batches; the leases of a process that died expire within
LEASE_SECONDS. Each process also counts its own streams per user, so the limit holds
within a process even while Valkey is unreachable; across processes it then fails open
(logged), like the other rate limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import itertools
import threading
import uuid
import weakref
from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings
from valkey.exceptions import ValkeyError

from accounts.addresses import rate_limit_key
from db.singletons import PerLoop
from db.valkey import LuaScript, get_async_valkey
from feedapp.errors import TooManyRequests
from feedapp.metrics import THROTTLE_REFUSALS
from feedapp.outages import VALKEY, VALKEY_CONSEQUENCE
from realtime.metrics import STREAMS_OPEN

KEY_PREFIX = "streams"
# A lease outlives its process by at most this long; renewed every third of it.
LEASE_SECONDS = 60.0
RENEW_SECONDS = LEASE_SECONDS / 3

ACQUIRE = LuaScript("stream_lease_acquire")

RENEW = LuaScript("stream_lease_renew")


class LimitReached(TooManyRequests):
    """Past a stream limit; the message says which (no Retry-After: a stream ending frees it)."""


@dataclass(eq=False)
class Slot:
    """One stream's place under the limits; `release` it when the stream ends."""

    key: str
    member: str
    _finalizer: weakref.finalize | None = None

    def release(self) -> None:
        """Give the place back (idempotent; also happens if the slot is dropped unreleased)."""
        if self._finalizer is not None:
            self._finalizer()


def subject_for(user_id: int | None, address: str) -> str:
    """Whom a stream counts against: the user, or the client address of anonymous callers
    (an IPv6 client's /64, see accounts.addresses.rate_limit_key)."""
    return f"user:{user_id}" if user_id is not None else f"address:{rate_limit_key(address)}"


def lease_key(subject: str) -> str:
    """The Valkey key of a subject's leases (hashed: no user input in keys)."""
    digest = hashlib.sha256(subject.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{KEY_PREFIX}:{digest}"


class StreamSlots:
    """The streams of one process (one event loop) and their leases."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._token = uuid.uuid4().hex[:16]
        self._numbers = itertools.count(1)
        self._per_key: defaultdict[str, int] = defaultdict(int)
        self._total = 0
        self._live: dict[str, str] = {}  # member -> key of the leases to renew
        self._released: list[tuple[str, str]] = []
        self._wake = asyncio.Event()
        self._keeper: asyncio.Task[None] | None = None

    @property
    def total(self) -> int:
        return self._total

    def count(self, subject: str) -> int:
        """This process's streams of `subject`."""
        return self._per_key.get(lease_key(subject), 0)

    @property
    def keeping(self) -> bool:
        return self._keeper is not None and not self._keeper.done()

    async def acquire(self, subject: str) -> Slot:
        """A place for one more stream of `subject`; LimitReached past either limit."""
        if self._total >= settings.SSE_MAX_STREAMS_PER_PROCESS:
            THROTTLE_REFUSALS.labels("streams:process").inc()
            raise LimitReached(message="This server has too many live streams; try again later")
        key = lease_key(subject)
        limit = settings.SSE_MAX_STREAMS_PER_USER
        if self._per_key.get(key, 0) >= limit:
            THROTTLE_REFUSALS.labels("streams:user").inc()
            raise LimitReached(message=f"At most {limit} live streams at a time")
        slot = Slot(key, f"{self._token}:{next(self._numbers)}")
        # Counted before Valkey answers, so that concurrent requests see each other.
        self._take(key)
        slot._finalizer = weakref.finalize(slot, self._give_back, key, slot.member)
        slot._finalizer.atexit = False  # at exit the loop is gone, and so are the streams
        try:
            leased = await self._lease(slot, limit)
        except BaseException:
            slot.release()
            raise
        if not leased:
            slot.release()
            THROTTLE_REFUSALS.labels("streams:user").inc()
            raise LimitReached(message=f"At most {limit} live streams at a time")
        self._live[slot.member] = slot.key
        self._ensure_keeper()
        return slot

    async def _lease(self, slot: Slot, limit: int) -> bool:
        client = get_async_valkey()
        try:
            script = ACQUIRE.on_async(client)
            result = await script(
                keys=[slot.key], args=[limit, int(LEASE_SECONDS * 1000), slot.member]
            )
        except (ValkeyError, OSError) as exc:
            # Only this process's own count applies until Valkey answers again; the
            # keeper then records the lease.
            VALKEY.failed(repr(exc), VALKEY_CONSEQUENCE)
            return True
        VALKEY.ended()
        return bool(result)

    def _take(self, key: str) -> None:
        self._per_key[key] += 1
        self._total += 1
        STREAMS_OPEN.inc()

    def _give_back(self, key: str, member: str) -> None:
        if threading.get_ident() != self._thread:
            # A finalizer may run in whatever thread dropped the last reference.
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to keep
                self._loop.call_soon_threadsafe(self._give_back, key, member)
            return
        self._total -= 1
        STREAMS_OPEN.dec()
        self._live.pop(member, None)
        left = self._per_key[key] - 1
        if left > 0:
            self._per_key[key] = left
        else:
            self._per_key.pop(key, None)
        self._released.append((key, member))
        self._wake.set()
        self._ensure_keeper()

    def _ensure_keeper(self) -> None:
        if self._keeper is None or self._keeper.done():
            # A context of its own, like the hub's tasks (see realtime.hub.Hub._spawn).
            self._keeper = self._loop.create_task(
                self._keep(), name="stream-leases", context=contextvars.Context()
            )

    async def _keep(self) -> None:
        """Renew live leases, drop released ones; ends when there is nothing to keep."""
        next_renewal = self._loop.time() + RENEW_SECONDS
        while self._live or self._released:
            try:
                async with asyncio.timeout(max(0.0, next_renewal - self._loop.time())):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            renew = self._loop.time() >= next_renewal
            if renew:
                next_renewal = self._loop.time() + RENEW_SECONDS
            await self._sync(renew)

    async def _sync(self, renew: bool) -> None:
        released, self._released = self._released, []
        by_key: defaultdict[str, list[str]] = defaultdict(list)
        if renew:
            for member, key in self._live.items():
                by_key[key].append(member)
        if not released and not by_key:
            return
        client = get_async_valkey()
        try:
            script = RENEW.on_async(client)
            async with client.pipeline(transaction=False) as pipe:
                for key, member in released:
                    pipe.zrem(key, member)
                for key, members in by_key.items():
                    await script(
                        keys=[key], args=[int(LEASE_SECONDS * 1000), *members], client=pipe
                    )
                await pipe.execute()
        except (ValkeyError, OSError) as exc:
            # Released leases then expire on their own; live ones are renewed next time.
            VALKEY.failed(repr(exc), VALKEY_CONSEQUENCE, count=False)


_slots: PerLoop[StreamSlots] = PerLoop(StreamSlots)


def get_slots() -> StreamSlots:
    """The running loop's stream slots."""
    return _slots.get()
