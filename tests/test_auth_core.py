"""Session tokens and the optional/required user helpers."""

from __future__ import annotations

import time

import jwt
import pytest
from django.conf import settings
from django.test import RequestFactory, override_settings

from accounts import tokens
from accounts.auth import COOKIE_NAME, optional_user, require_user
from accounts.tokens import issue_token, read_token
from feedapp.errors import NotAuthenticated
from tests.users import make_user


def test_token_round_trip_and_half_life() -> None:
    now = time.time()
    claims = read_token(issue_token(42, now=now))
    assert claims is not None
    assert claims.user_id == 42
    assert not claims.past_half_life(now + settings.JWT_TTL_SECONDS * 0.4)
    assert claims.past_half_life(now + settings.JWT_TTL_SECONDS * 0.6)


@pytest.mark.parametrize(
    "token",
    [
        jwt.encode(
            {"sub": "1", "iat": int(time.time()), "exp": int(time.time()) + 60},
            "",
            algorithm="none",
        ),
        jwt.encode(
            {"sub": "1", "iat": int(time.time()), "exp": int(time.time()) + 60},
            "another-key-that-is-long-enough-for-hs256",
            algorithm="HS256",
        ),
        jwt.encode(
            {"sub": "1", "iat": int(time.time()) - 120, "exp": int(time.time()) - 60},
            settings.JWT_SECRET_KEY,
            algorithm="HS256",
        ),
        jwt.encode(
            {"sub": "1", "exp": int(time.time()) + 60}, settings.JWT_SECRET_KEY, algorithm="HS256"
        ),
        jwt.encode(
            {"sub": "x1", "iat": int(time.time()), "exp": int(time.time()) + 60},
            settings.JWT_SECRET_KEY,
            algorithm="HS256",
        ),
        "garbage",
        "",
    ],
    ids=["alg-none", "wrong-key", "expired", "no-iat", "bad-sub", "garbage", "empty"],
)
def test_forged_or_broken_tokens_are_refused(token: str) -> None:
    assert read_token(token) is None


def test_tampered_payload_is_refused() -> None:
    header, _, signature = issue_token(1).split(".")
    other = issue_token(2).split(".")[1]
    assert read_token(f"{header}.{other}.{signature}") is None


async def test_helpers_resolve_the_cookie_user() -> None:
    user = await make_user()
    request = RequestFactory().get("/", HTTP_COOKIE=f"{COOKIE_NAME}={issue_token(user.id)}")
    assert await optional_user(request) == user
    assert await require_user(request) == user

    anonymous = RequestFactory().get("/")
    assert await optional_user(anonymous) is None
    with pytest.raises(NotAuthenticated) as caught:
        await require_user(anonymous)
    assert caught.value.status_code == 401


async def test_unknown_user_is_anonymous() -> None:
    request = RequestFactory().get("/", HTTP_COOKIE=f"{COOKIE_NAME}={issue_token(987654321)}")
    assert await optional_user(request) is None


# --- the per-process cache of verified tokens -------------------------------------------


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every token PyJWT is asked to verify."""
    seen: list[str] = []
    decode = jwt.decode

    def counting_decode(token: str, *args: object, **kwargs: object) -> object:
        seen.append(token)
        return decode(token, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(jwt, "decode", counting_decode)
    return seen


def test_a_token_is_verified_once_then_served_from_the_cache(decodes: list[str]) -> None:
    token = issue_token(7)
    first, second = read_token(token), read_token(token)
    assert first is not None and first == second
    assert decodes == [token]


def test_a_cached_token_is_refused_once_expired(
    decodes: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    now = time.time()
    token = issue_token(8, now=now)
    assert read_token(token) is not None
    expires = now + settings.JWT_TTL_SECONDS
    monkeypatch.setattr(time, "time", lambda: expires + 1)
    assert read_token(token) is None


def test_refused_tokens_are_not_cached(decodes: list[str]) -> None:
    forged = jwt.encode(
        {"sub": "1", "iat": int(time.time()), "exp": int(time.time()) + 60},
        "another-key-that-is-long-enough-for-hs256",
        algorithm="HS256",
    )
    assert read_token(forged) is None
    assert read_token(forged) is None
    assert decodes == [forged, forged]


def test_the_cache_is_bounded(decodes: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens._verified, "size", 3)
    issued = [issue_token(user_id) for user_id in range(100, 105)]
    for token in issued:
        assert read_token(token) is not None
    decodes.clear()
    # The two least recently used were forgotten: verified again; the rest were not.
    for token in issued:
        assert read_token(token) is not None
    assert decodes[:2] == issued[:2]
    assert len(tokens._verified._claims) == 3


def test_another_key_forgets_what_the_old_one_verified(decodes: list[str]) -> None:
    token = issue_token(9)
    assert read_token(token) is not None
    with override_settings(JWT_SECRET_KEY="a-new-key-that-is-long-enough-for-hs256-1234"):
        assert read_token(token) is None
