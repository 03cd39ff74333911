"""Session tokens and the optional/required user helpers."""

from __future__ import annotations

import time

import jwt
import pytest
from django.conf import settings
from django.test import RequestFactory

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
