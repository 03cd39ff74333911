"""Rate limits kept in Valkey, shared by every web process.

Each limit is a GCRA bucket (a token bucket stored as one timestamp): `limit` events
per `period_seconds`, with bursts up to `burst` (default `limit`). Valkey's own clock
decides, so web processes with skewed clocks agree. Subjects (usernames, addresses,
user ids) are hashed into the key, so no user input reaches a key verbatim.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass

import valkey

from db.valkey import LuaScript, get_async_valkey
from feedapp.errors import TooManyRequests
from feedapp.metrics import THROTTLE_REFUSALS

log = logging.getLogger(__name__)

KEY_PREFIX = "throttle"

GCRA = LuaScript("throttle_gcra")


@dataclass(frozen=True)
class Rate:
    """`limit` events per `period_seconds`, in bursts of at most `burst` (default `limit`)."""

    limit: int
    period_seconds: float
    burst: int | None = None

    @property
    def interval_ms(self) -> int:
        return max(1, math.ceil(self.period_seconds * 1000 / max(self.limit, 1)))

    @property
    def capacity(self) -> int:
        return max(1, self.burst if self.burst is not None else self.limit)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    # Whole seconds until one more event would be allowed; 0 when allowed.
    retry_after: int = 0


def bucket_key(scope: str, subject: str) -> str:
    """The Valkey key of one subject's bucket in `scope` (the subject is hashed)."""
    digest = hashlib.sha256(subject.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{KEY_PREFIX}:{scope}:{digest}"


async def _run(scope: str, subject: str, rate: Rate, cost: int) -> Verdict:
    script = GCRA.on_async(get_async_valkey())
    try:
        allowed, wait_ms = await script(
            keys=[bucket_key(scope, subject)], args=[rate.interval_ms, rate.capacity, cost]
        )
    except valkey.exceptions.ValkeyError as exc:
        # Fail open: an outage of the cache must not lock every user out; it is logged.
        log.warning("throttle %s unavailable, allowing: %r", scope, exc)
        return Verdict(allowed=True)
    if allowed:
        return Verdict(allowed=True)
    THROTTLE_REFUSALS.labels(scope).inc()
    return Verdict(allowed=False, retry_after=max(1, math.ceil(int(wait_ms) / 1000)))


async def consume(scope: str, subject: str, rate: Rate) -> Verdict:
    """Count one event for `subject` if the rate allows it; the verdict says whether it did."""
    return await _run(scope, subject, rate, cost=1)


async def peek(scope: str, subject: str, rate: Rate) -> Verdict:
    """Whether one more event would be allowed now, without counting it."""
    return await _run(scope, subject, rate, cost=0)


async def clear(scope: str, subject: str) -> None:
    """Forget `subject`'s events in `scope` (e.g. failures, after a successful login)."""
    try:
        await get_async_valkey().delete(bucket_key(scope, subject))
    except valkey.exceptions.ValkeyError as exc:
        log.warning("throttle %s unavailable, not cleared: %r", scope, exc)


def raise_if_denied(verdict: Verdict, message: str | None = None) -> None:
    """Raise TooManyRequests (with the wait as its Retry-After) when the verdict denies."""
    if not verdict.allowed:
        raise TooManyRequests(verdict.retry_after, message)
