"""Rate limits in the real Valkey: the module itself, then login and registration over HTTP."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
import valkey
from asgiref.sync import sync_to_async
from django.test import RequestFactory, override_settings

from accounts import throttle
from accounts.backends import AccountBackend
from accounts.throttle import Limit, Rate
from stack import valkey as valkey_service
from stack.profiles import get_profile
from tests.accounts_client import AddressedClient, new_identity, random_address, register

LOGIN = "/api/user/login"
REGISTER = "/api/user/register"
# A bucket regains one slot every period / limit. Tests that expect a refusal use a long
# period, so that a slow machine cannot refill a slot halfway; tests of the reset use a
# short one, so that they wait about two seconds.
SLOW = 60.0
WINDOW = 2.0


def _subject() -> str:
    return f"subject-{uuid.uuid4().hex}"


async def test_consume_trips_at_the_limit() -> None:
    rate, subject = Rate(3, SLOW), _subject()
    verdicts = [await throttle.consume("test", subject, rate) for _ in range(4)]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert 1 <= verdicts[-1].retry_after <= 20  # the next slot: 60 s / 3 per slot
    # Subjects and scopes are separate buckets.
    assert (await throttle.consume("test", _subject(), rate)).allowed
    assert (await throttle.consume("other-test", subject, rate)).allowed

    await throttle.clear("test", subject)
    assert (await throttle.consume("test", subject, rate)).allowed


async def test_reserve_counts_in_every_bucket_or_in_none() -> None:
    roomy = Limit("test", _subject(), Rate(10, SLOW))
    tight = Limit("test", _subject(), Rate(2, SLOW))
    assert (await throttle.reserve(roomy, tight)).allowed
    assert (await throttle.reserve(roomy, tight)).allowed
    refused = await throttle.reserve(roomy, tight)
    assert not refused.allowed
    assert refused.verdict.refused_by == tight
    # The refusal counted nothing in the roomy bucket: 8 more fit there, not 7.
    verdicts = [await throttle.reserve(roomy) for _ in range(9)]
    assert [v.allowed for v in verdicts] == [True] * 8 + [False]


async def test_a_refund_gives_the_reserved_event_back() -> None:
    limit = Limit("test", _subject(), Rate(2, SLOW))
    first = await throttle.reserve(limit)
    await first.refund()
    # Refunded, so two more fit; a refused reservation's refund gives nothing back.
    assert [(await throttle.reserve(limit)).allowed for _ in range(3)] == [True, True, False]
    refused = await throttle.reserve(limit)
    await refused.refund()
    assert not (await throttle.reserve(limit)).allowed


async def test_parallel_reservations_never_pass_the_limit() -> None:
    limit = Limit("test", _subject(), Rate(5, SLOW))
    attempts = await asyncio.gather(*(throttle.reserve(limit) for _ in range(50)))
    assert sum(attempt.allowed for attempt in attempts) == 5


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


def _login(identity: dict[str, str], password: str | None = None) -> dict[str, str]:
    return {"username": identity["username"], "password": password or identity["password"]}


@override_settings(LOGIN_FAILURES_LIMIT=5, LOGIN_FAILURES_WINDOW_SECONDS=SLOW)
async def test_parallel_wrong_passwords_cannot_pass_the_limit() -> None:
    """Issue 12, item 1: each attempt is counted before its password check, not after."""
    identity = new_identity()
    await register(AddressedClient(), identity)
    attacker = random_address()

    async def guess(n: int) -> int:
        client = AddressedClient(attacker)
        response = await client.post_json(LOGIN, _login(identity, f"wrong-{n}"))
        return int(response.status_code)

    statuses = await asyncio.gather(*(guess(n) for n in range(30)))
    assert sorted(statuses) == [401] * 5 + [429] * 25


@override_settings(LOGIN_FAILURES_LIMIT=3, LOGIN_FAILURES_WINDOW_SECONDS=SLOW)
async def test_failures_from_one_address_lock_out_that_address_only() -> None:
    """Issue 12, item 2: an attacker cannot lock the owner out from elsewhere."""
    identity, bystander = new_identity(), new_identity()
    attacker = AddressedClient()
    await register(AddressedClient(), identity)
    await register(AddressedClient(), bystander)

    # Three failures, by username and by email alike: this address's budget for the
    # account is spent.
    for login in (identity["username"], identity["email"], identity["username"].upper()):
        response = await attacker.post_json(LOGIN, {"username": login, "password": "wrong-one"})
        assert response.status_code == 401
    refused = await attacker.post_json(LOGIN, _login(identity))  # even the right password
    assert refused.status_code == 429
    assert refused.json() == {"detail": "Too many failed logins; try again later"}
    assert 1 <= int(refused["Retry-After"]) <= SLOW

    # The owner, from an address with no failures, signs in.
    assert (await AddressedClient().post_json(LOGIN, _login(identity))).status_code == 204
    # The attacker's address may still try other accounts (up to the per-address limit).
    assert (await attacker.post_json(LOGIN, _login(bystander))).status_code == 204


@override_settings(
    LOGIN_FAILURES_LIMIT=3, LOGIN_ACCOUNT_FAILURES_LIMIT=6, LOGIN_FAILURES_WINDOW_SECONDS=SLOW
)
async def test_failures_from_many_addresses_trip_the_account_limit() -> None:
    identity = new_identity()
    await register(AddressedClient(), identity)
    statuses = []
    for _ in range(3):
        attacker = AddressedClient()
        for _ in range(3):
            response = await attacker.post_json(LOGIN, _login(identity, "wrong-one"))
            statuses.append(response.status_code)
    assert statuses == [401] * 6 + [429] * 3
    # Past the account's limit, everybody waits, the owner too: brute force stays slow.
    assert (await AddressedClient().post_json(LOGIN, _login(identity))).status_code == 429


@override_settings(
    LOGIN_FAILURES_LIMIT=3, LOGIN_ADDRESS_FAILURES_LIMIT=4, LOGIN_FAILURES_WINDOW_SECONDS=SLOW
)
async def test_failures_against_many_accounts_trip_the_address_limit() -> None:
    attacker = AddressedClient()
    statuses = [
        (await attacker.post_json(LOGIN, _login(new_identity()))).status_code for _ in range(5)
    ]
    assert statuses == [401] * 4 + [429]


@override_settings(LOGIN_FAILURES_LIMIT=3, LOGIN_FAILURES_WINDOW_SECONDS=SLOW)
async def test_ipv6_clients_of_one_64_share_a_budget() -> None:
    """Issue 12, item 8: a host with a /64 cannot get a fresh budget per address."""
    identity = new_identity()
    await register(AddressedClient(), identity)
    prefix = f"2001:db8:{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}"
    statuses = []
    for n in range(4):
        client = AddressedClient(f"{prefix}::{n + 1:x}")
        statuses.append((await client.post_json(LOGIN, _login(identity, "wrong"))).status_code)
    assert statuses == [401, 401, 401, 429]
    # Another /64 is another budget.
    other = AddressedClient(f"{prefix[:-4]}ffff::1")
    assert (await other.post_json(LOGIN, _login(identity))).status_code == 204


@override_settings(LOGIN_FAILURES_LIMIT=1, LOGIN_FAILURES_WINDOW_SECONDS=WINDOW)
async def test_failed_logins_reset_after_the_window() -> None:
    identity = new_identity()
    client = AddressedClient()
    await register(client, identity)
    assert (await client.post_json(LOGIN, _login(identity, "wrong-one"))).status_code == 401
    refused = await client.post_json(LOGIN, _login(identity))
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= WINDOW

    await asyncio.sleep(WINDOW + 0.3)
    assert (await client.post_json(LOGIN, _login(identity))).status_code == 204


@override_settings(LOGIN_ACCOUNT_FAILURES_LIMIT=3, LOGIN_FAILURES_WINDOW_SECONDS=SLOW)
async def test_unknown_accounts_are_throttled_too() -> None:
    client, ghost = AddressedClient(), new_identity()
    statuses = []
    for _ in range(4):
        client.address = random_address()  # a new address each time: only the name counts
        statuses.append((await client.post_json(LOGIN, _login(ghost))).status_code)
    assert statuses == [401, 401, 401, 429]


@override_settings(LOGIN_FAILURES_LIMIT=3, LOGIN_FAILURES_WINDOW_SECONDS=SLOW)
async def test_success_clears_the_failures_from_that_address() -> None:
    identity = new_identity()
    client = AddressedClient()
    await register(client, identity)
    for _ in range(2):
        assert (await client.post_json(LOGIN, _login(identity, "wrong-one"))).status_code == 401
    assert (await client.post_json(LOGIN, _login(identity))).status_code == 204
    # The owner's typos are forgotten: three more failures are allowed from there.
    statuses = [
        (await client.post_json(LOGIN, _login(identity, "wrong-one"))).status_code for _ in range(4)
    ]
    assert statuses == [401, 401, 401, 429]


@override_settings(REGISTRATIONS_LIMIT=2, REGISTRATIONS_WINDOW_SECONDS=SLOW)
async def test_registrations_are_throttled_per_address() -> None:
    client = AddressedClient()
    await register(client, new_identity())
    await register(client, new_identity())
    refused = await client.post_json(REGISTER, new_identity())
    assert refused.status_code == 429
    assert refused.json() == {"detail": "Too many registrations; try again later"}
    assert 1 <= int(refused["Retry-After"]) <= SLOW
    # Another address is not affected.
    await register(AddressedClient(), new_identity())


@override_settings(REGISTRATIONS_LIMIT=1, REGISTRATIONS_WINDOW_SECONDS=WINDOW)
async def test_registrations_reset_after_the_window() -> None:
    client = AddressedClient()
    await register(client, new_identity())
    assert (await client.post_json(REGISTER, new_identity())).status_code == 429
    await asyncio.sleep(WINDOW + 0.3)
    await register(client, new_identity())


@pytest.mark.stack_control
async def test_login_still_answers_while_valkey_is_down(caplog: pytest.LogCaptureFixture) -> None:
    """The throttle fails open: an outage of the cache must not lock everyone out."""
    identity = new_identity()
    client = AddressedClient()
    await register(client, identity)
    profile = get_profile("test")
    valkey_service.stop(profile)
    try:
        wrong = await client.post_json(LOGIN, _login(identity, "wrong-one"))
        right = await client.post_json(LOGIN, _login(identity))
    finally:
        valkey_service.start(profile)
    assert (wrong.status_code, right.status_code) == (401, 204)
    assert "Valkey unavailable (rate limits let requests through" in caplog.text


@override_settings(LOGIN_FAILURES_LIMIT=3, LOGIN_FAILURES_WINDOW_SECONDS=SLOW)
async def test_parallel_admin_sign_ins_cannot_pass_the_limit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 12, item 1, for the admin: its sign-in goes through the same reservation."""
    identity = new_identity()
    await register(AddressedClient(), identity)
    backend = AccountBackend()
    request = RequestFactory().post("/admin/login/", REMOTE_ADDR=random_address())

    def sign_in(n: int) -> object:
        return backend.authenticate(request, username=identity["username"], password=f"no-{n}")

    caplog.set_level(logging.INFO, logger="accounts.services")
    results = await asyncio.gather(
        *(sync_to_async(sign_in, thread_sensitive=False)(n) for n in range(12))
    )
    assert results == [None] * 12
    checked = [r for r in caplog.records if r.getMessage().startswith("login failed")]
    throttled = [r for r in caplog.records if r.getMessage().startswith("login throttled")]
    assert (len(checked), len(throttled)) == (3, 9)
