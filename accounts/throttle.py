"""Rate limits kept in Valkey, shared by every web process.

Each limit is a GCRA bucket (a token bucket stored as one timestamp): `limit` events
per `period_seconds`, with bursts up to `burst` (default `limit`). Valkey's own clock
decides, so web processes with skewed clocks agree. Subjects (usernames, addresses,
user ids) are hashed into the key, so no user input reaches a key verbatim.

Two ways to use it: `consume` counts an event if the rate allows it (votes, reports,
registrations); `reserve` counts one event in several buckets at once before slow work
whose outcome decides whether it counts, and the caller `refund`s it if not (logins:
only failures count, but a failure is known only after the password check).
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
from feedapp.outages import VALKEY, VALKEY_CONSEQUENCE

log = logging.getLogger(__name__)

KEY_PREFIX = "throttle"

RESERVE = LuaScript("throttle_reserve")
REFUND = LuaScript("throttle_refund")


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
class Limit:
    """One bucket: `subject`'s events in `scope`, at `rate`."""

    scope: str
    subject: str
    rate: Rate

    @property
    def key(self) -> str:
        return bucket_key(self.scope, self.subject)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    # Whole seconds until one more event would be allowed; 0 when allowed.
    retry_after: int = 0
    # The first limit that refused (None when allowed, or when the throttle failed open).
    refused_by: Limit | None = None


@dataclass(frozen=True)
class Reservation:
    """The outcome of `reserve`: one event counted in each of `limits` when allowed."""

    verdict: Verdict
    limits: tuple[Limit, ...]

    @property
    def allowed(self) -> bool:
        return self.verdict.allowed

    async def refund(self) -> None:
        """Give the counted event back (e.g. the login it guarded succeeded)."""
        if self.allowed and self.limits:
            await _refund(self.limits)


def bucket_key(scope: str, subject: str) -> str:
    """The Valkey key of one subject's bucket in `scope` (the subject is hashed)."""
    digest = hashlib.sha256(subject.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{KEY_PREFIX}:{scope}:{digest}"


async def reserve(*limits: Limit) -> Reservation:
    """Count one event in every limit's bucket at once, or in none if one is full.

    Atomic (one Valkey script), so that parallel requests cannot all pass a check made
    before any of them is counted: reserve first, do the guarded work, `refund` when the
    event turns out not to count (a login that succeeded).
    """
    args: list[int] = []
    for limit in limits:
        args += [limit.rate.interval_ms, limit.rate.capacity]
    script = RESERVE.on_async(get_async_valkey())
    try:
        allowed, wait_ms, refused = await script(keys=[limit.key for limit in limits], args=args)
    except valkey.exceptions.ValkeyError as exc:
        # Fail open: an outage of the cache must not lock every user out; it is logged
        # once, not per request.
        VALKEY.failed(repr(exc), VALKEY_CONSEQUENCE)
        return Reservation(Verdict(allowed=True), ())
    VALKEY.ended()
    if allowed:
        return Reservation(Verdict(allowed=True), limits)
    refused_by = limits[int(refused) - 1]
    THROTTLE_REFUSALS.labels(refused_by.scope).inc()
    verdict = Verdict(
        allowed=False,
        retry_after=max(1, math.ceil(int(wait_ms) / 1000)),
        refused_by=refused_by,
    )
    return Reservation(verdict, limits)


async def _refund(limits: tuple[Limit, ...]) -> None:
    script = REFUND.on_async(get_async_valkey())
    try:
        await script(
            keys=[limit.key for limit in limits], args=[limit.rate.interval_ms for limit in limits]
        )
    except valkey.exceptions.ValkeyError as exc:
        log.warning("throttle unavailable, event not refunded: %r", exc)


async def consume(scope: str, subject: str, rate: Rate) -> Verdict:
    """Count one event for `subject` if the rate allows it; the verdict says whether it did."""
    return (await reserve(Limit(scope, subject, rate))).verdict


async def clear(scope: str, subject: str) -> None:
    """Forget `subject`'s events in `scope` (e.g. failures, after a successful login)."""
    try:
        await get_async_valkey().delete(bucket_key(scope, subject))
    except valkey.exceptions.ValkeyError as exc:
        VALKEY.failed(repr(exc), VALKEY_CONSEQUENCE)
        log.info("throttle %s not cleared: %r", scope, exc)


def raise_if_denied(verdict: Verdict, message: str | None = None) -> None:
    """Raise TooManyRequests (with the wait as its Retry-After) when the verdict denies."""
    if not verdict.allowed:
        raise TooManyRequests(verdict.retry_after, message)
