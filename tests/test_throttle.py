"""Rate limits in the real Valkey."""

from __future__ import annotations

import asyncio
import uuid

import valkey

from accounts import throttle
from accounts.throttle import Rate

# A bucket regains one slot every period / limit. Tests that expect a refusal use a long
# period, so that a slow machine cannot refill a slot halfway; tests of the reset use a
# short one, so that they wait about two seconds.
SLOW = 60.0
WINDOW = 2.0


def _subject() -> str:
    return f"subject-{uuid.uuid4().hex}"


async def test_consume_trips_at_the_limit_and_peek_does_not_count() -> None:
    rate, subject = Rate(3, SLOW), _subject()
    for _ in range(5):
        assert (await throttle.peek("test", subject, rate)).allowed
    verdicts = [await throttle.consume("test", subject, rate) for _ in range(4)]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert 1 <= verdicts[-1].retry_after <= 20  # the next slot: 60 s / 3 per slot
    assert not (await throttle.peek("test", subject, rate)).allowed
    # Subjects and scopes are separate buckets.
    assert (await throttle.consume("test", _subject(), rate)).allowed
    assert (await throttle.consume("other-test", subject, rate)).allowed

    await throttle.clear("test", subject)
    assert (await throttle.consume("test", subject, rate)).allowed


async def test_burst_may_exceed_the_sustained_rate() -> None:
    rate, subject = Rate(10, 10, burst=20), _subject()
    verdicts = [await throttle.consume("test", subject, rate) for _ in range(21)]
    assert [v.allowed for v in verdicts] == [True] * 20 + [False]
    assert verdicts[-1].retry_after == 1


async def test_bucket_refills_after_the_window() -> None:
    rate, subject = Rate(1, WINDOW), _subject()
    assert (await throttle.consume("test", subject, rate)).allowed
    assert not (await throttle.consume("test", subject, rate)).allowed
    await asyncio.sleep(WINDOW + 0.3)
    assert (await throttle.consume("test", subject, rate)).allowed
    assert not (await throttle.consume("test", subject, rate)).allowed


def test_keys_do_not_contain_the_subject(valkey_client: valkey.Valkey) -> None:
    key = throttle.bucket_key("login", "Evil Name\r\n*3 with spaces")
    assert key.startswith("throttle:login:")
    assert " " not in key and "\n" not in key and "Evil" not in key
    assert throttle.bucket_key("login", "a") != throttle.bucket_key("login", "b")


async def test_buckets_expire_in_valkey(valkey_client: valkey.Valkey) -> None:
    subject = _subject()
    await throttle.consume("test", subject, Rate(5, WINDOW))
    ttl_ms = int(valkey_client.pttl(throttle.bucket_key("test", subject)))  # type: ignore[arg-type]
    assert 0 < ttl_ms <= WINDOW * 1000
