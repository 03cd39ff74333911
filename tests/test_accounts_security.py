"""Sessions under attack: forged tokens, bans, CSRF, cookie renewal, secrets in output."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import subprocess
import sys
import time
from typing import Any

import jwt
import pytest
from django.conf import settings
from django.test import AsyncClient, override_settings

from accounts.auth import COOKIE_NAME
from accounts.services import do_deactivate_user, do_reactivate_user
from accounts.tokens import issue_token, read_token
from db.pool import connection
from db.sql import execute
from stack.profiles import PROJECT_ROOT
from tests.accounts_client import AddressedClient, new_identity, register
from tests.users import client_for, make_user

ME = "/api/user/me"
LOGIN = "/api/user/login"
LOGOUT = "/api/user/logout"


def _claims(user_id: int, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": str(user_id), "iat": now, "exp": now + 600} | changes


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _forged(user_id: int, kind: str) -> str:
    if kind == "alg-none":
        return jwt.encode(_claims(user_id), "", algorithm="none")
    if kind == "alg-none-unsigned-by-hand":
        return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(user_id))}."
    if kind == "wrong-key":
        return jwt.encode(_claims(user_id), "x" * 48, algorithm="HS256")
    if kind == "hs512":
        return jwt.encode(_claims(user_id), settings.JWT_SECRET_KEY, algorithm="HS512")
    if kind == "expired":
        past = int(time.time()) - 7200
        return jwt.encode(
            _claims(user_id, iat=past, exp=past + 60), settings.JWT_SECRET_KEY, algorithm="HS256"
        )
    if kind == "tampered-payload":
        header, _, signature = issue_token(user_id + 1).split(".")
        return f"{header}.{_b64(_claims(user_id))}.{signature}"
    if kind == "garbage":
        return "not.a.token"
    if kind == "unknown-user":
        return issue_token(user_id + 10_000_000)
    raise AssertionError(kind)


FORGERIES = [
    "alg-none",
    "alg-none-unsigned-by-hand",
    "wrong-key",
    "hs512",
    "expired",
    "tampered-payload",
    "garbage",
    "unknown-user",
]


@pytest.mark.parametrize("kind", FORGERIES)
async def test_forged_tokens_get_401(kind: str) -> None:
    user = await make_user()
    genuine = client_for(user)
    assert (await genuine.get(ME)).status_code == 200  # the user exists and is active

    client = AsyncClient()
    client.cookies[COOKIE_NAME] = _forged(user.id, kind)
    response = await client.get(ME)
    assert response.status_code == 401
    assert response.json() == {"detail": "Not authenticated"}
    assert COOKIE_NAME not in response.cookies


async def test_deactivation_applies_at_once_in_this_process() -> None:
    user = await make_user()
    client = client_for(user)
    assert (await client.get(ME)).status_code == 200

    assert await do_deactivate_user(user.id) is True
    assert await do_deactivate_user(user.id) is False  # already inactive
    assert (await client.get(ME)).status_code == 401

    assert await do_reactivate_user(user.id) is True
    # Lifting the ban does not bring the sessions from before it back.
    assert (await client.get(ME)).status_code == 401


async def test_deactivation_elsewhere_applies_within_the_cache_delay() -> None:
    """Another process bans the user: this one notices once its cached view expires."""
    user = await make_user()
    client = client_for(user)
    with override_settings(AUTH_USER_CACHE_SECONDS=0.5):
        assert (await client.get(ME)).status_code == 200  # now cached in this process
        # Straight in the database, as another web process or the admin would, so that
        # this process's cache is not told.
        async with connection() as conn:
            await execute(
                conn, 'UPDATE "user" SET is_active = false WHERE id = %(id)s', {"id": user.id}
            )
        deadline = time.monotonic() + settings.AUTH_USER_CACHE_SECONDS + 5
        status = 200
        while status == 200 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            status = (await client.get(ME)).status_code
    assert status == 401


async def test_deactivated_user_cannot_log_in_and_gets_the_usual_401() -> None:
    identity = new_identity()
    client = AddressedClient()
    info = await register(client, identity)
    assert await do_deactivate_user(info["id"])
    response = await client.post_json(
        LOGIN, {"username": identity["username"], "password": identity["password"]}
    )
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid username or password"}
    assert (await client.get(ME)).status_code == 401  # the registration cookie died too


# --- Secrets in output --------------------------------------------------------------------


async def test_no_response_or_log_line_contains_a_password_or_hash(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    identity = new_identity()
    password = identity["password"]
    client = AddressedClient()
    login = {"username": identity["username"], "password": password}
    responses = [
        await client.post_json("/api/user/register", identity),
        await client.post_json("/api/user/register", identity),  # 409
        await client.get(ME),
        await client.post_json(LOGIN, login),
        await client.post_json(LOGIN, login | {"password": password + "-wrong"}),
        await client.post_json(LOGIN, login | {"username": new_identity()["username"]}),
        await client.post_json(LOGIN, login | {"password": password * 4}),  # 422, too long
        await client.post_json("/api/user/register", identity | {"username": "x", "bad": password}),
    ]
    assert [r.status_code for r in responses] == [201, 409, 200, 204, 401, 401, 422, 422]
    # The events were logged, so the assertions below looked at real log output.
    assert "registered user" in caplog.text
    assert "login failed" in caplog.text
    for response in responses:
        seen = (response.content + str(response.headers).encode()).lower()
        assert password.encode() not in seen
        for marker in (b"argon2", b"pbkdf2", b"$v=19$"):
            assert marker not in seen
    for record in caplog.records:
        line = record.getMessage() + str(record.args or "") + (record.exc_text or "")
        assert password not in line
        assert "argon2" not in line.lower()
        assert "pbkdf2" not in line.lower()


# --- CSRF ---------------------------------------------------------------------------------


async def _logout_with(headers: dict[str, str]) -> Any:
    user = await make_user()
    client = client_for(user)
    return await client.post(LOGOUT, headers=headers)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Origin": "https://evil.example"}, 403),
        ({"Origin": "null"}, 403),
        ({"Origin": "http://localhost:5173.evil.example"}, 403),
        ({"Referer": "https://evil.example/page"}, 403),
        ({"Referer": "not a url"}, 403),
        ({"Origin": "https://evil.example", "Referer": "http://localhost:5173/"}, 403),
        ({"Origin": "http://localhost:5173"}, 204),
        ({"Origin": "http://127.0.0.1:8000"}, 204),
        ({"Referer": "http://localhost:5173/polls/3"}, 204),
        # The FeedApp frontend's own dev server (`vite --port 3000`), out of the box.
        ({"Origin": "http://localhost:3000"}, 204),
        ({"Origin": "http://127.0.0.1:3000"}, 204),
        ({"Referer": "http://localhost:3000/poll/7"}, 204),
        ({"Origin": "http://localhost:3001"}, 403),
        ({}, 204),
    ],
)
async def test_state_changing_requests_check_the_origin(
    headers: dict[str, str], status: int
) -> None:
    response = await _logout_with(headers)
    assert response.status_code == status, response.content
    if status == 403:
        assert response.json() == {"detail": "Origin not allowed"}
        assert COOKIE_NAME not in response.cookies


async def test_foreign_origin_login_is_refused_and_allowed_origin_works() -> None:
    identity = new_identity()
    client = AddressedClient()
    await register(client, identity)
    body = {"username": identity["username"], "password": identity["password"]}
    foreign = await client.post_json(LOGIN, body, headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403
    allowed = await client.post_json(LOGIN, body, headers={"Origin": "http://localhost:5173"})
    assert allowed.status_code == 204
    assert COOKIE_NAME in allowed.cookies


async def test_allowed_origins_come_from_settings() -> None:
    with override_settings(FEEDAPP_ALLOWED_ORIGINS=["https://polls.example"]):
        assert (await _logout_with({"Origin": "https://polls.example"})).status_code == 204
        assert (await _logout_with({"Origin": "http://localhost:5173"})).status_code == 403


def _production_origins(**env: str) -> subprocess.CompletedProcess[str]:
    """Load the settings in a fresh production-mode process; print the allowed origins."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("FEEDAPP_ALLOWED_ORIGINS", "DJANGO_SETTINGS_MODULE")
    }
    environment |= {
        "FEEDAPP_MODE": "production",
        "FEEDAPP_ENV_FILE": "/nonexistent",
        "DJANGO_SECRET_KEY": "test-only-secret",
        "JWT_SECRET_KEY": "test-only-jwt-secret",
    } | env
    code = "import feedapp.settings as s; print(','.join(s.FEEDAPP_ALLOWED_ORIGINS))"
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_requires_an_explicit_origin_list() -> None:
    # The development default (localhost dev servers) must never reach a deployment.
    missing = _production_origins()
    assert missing.returncode != 0
    assert "FEEDAPP_ALLOWED_ORIGINS must be set when FEEDAPP_MODE=production" in missing.stderr
    given = _production_origins(FEEDAPP_ALLOWED_ORIGINS="https://polls.example")
    assert given.returncode == 0, given.stderr
    assert given.stdout.strip() == "https://polls.example"


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
async def test_other_unsafe_methods_are_origin_checked(method: str) -> None:
    # Checked before routing, so it holds for every API route, present and future.
    response = await getattr(AsyncClient(), method)(
        "/api/poll/1", headers={"Origin": "https://evil.example"}
    )
    assert response.status_code == 403


async def test_safe_methods_are_not_origin_checked() -> None:
    user = await make_user()
    response = await client_for(user).get(ME, headers={"Origin": "https://evil.example"})
    assert response.status_code == 200


async def test_django_csrf_still_guards_the_admin_but_not_the_api() -> None:
    strict = AsyncClient(enforce_csrf_checks=True)
    admin = await strict.post("/admin/login/", {"username": "a", "password": "b"})
    assert admin.status_code == 403
    api_call = await strict.post(LOGOUT)
    assert api_call.status_code == 204


# --- Cookie renewal -----------------------------------------------------------------------


async def test_session_cookie_is_renewed_past_half_life() -> None:
    user = await make_user()
    client = AsyncClient()
    client.cookies[COOKIE_NAME] = issue_token(
        user.id, now=time.time() - settings.JWT_TTL_SECONDS * 0.6
    )
    response = await client.get(ME)
    assert response.status_code == 200
    renewed = response.cookies[COOKIE_NAME]
    assert renewed["httponly"] is True
    assert int(renewed["max-age"]) == settings.JWT_TTL_SECONDS
    claims = read_token(renewed.value)
    assert claims is not None
    assert claims.user_id == user.id
    assert not claims.past_half_life()


async def test_young_session_cookie_is_not_renewed() -> None:
    user = await make_user()
    client = AsyncClient()
    client.cookies[COOKIE_NAME] = issue_token(
        user.id, now=time.time() - settings.JWT_TTL_SECONDS * 0.4
    )
    response = await client.get(ME)
    assert response.status_code == 200
    assert COOKIE_NAME not in response.cookies


async def test_renewal_keeps_the_sessions_start_and_never_passes_its_maximum_age() -> None:
    user = await make_user()
    now = time.time()
    ttl = settings.JWT_TTL_SECONDS
    started = int(now - settings.SESSION_MAX_AGE_SECONDS + ttl * 0.3)  # ends before exp
    client = AsyncClient()
    client.cookies[COOKIE_NAME] = issue_token(user.id, now=now - ttl * 0.6, started_at=started)
    response = await client.get(ME)
    assert response.status_code == 200
    # Renewing would only give a shorter token: the session ends when it ends.
    assert COOKIE_NAME not in response.cookies

    started = int(now - settings.SESSION_MAX_AGE_SECONDS + ttl * 2)  # ends in 2 ttl
    client.cookies[COOKIE_NAME] = issue_token(user.id, now=now - ttl * 0.6, started_at=started)
    renewed = (await client.get(ME)).cookies[COOKIE_NAME]
    claims = read_token(renewed.value)
    assert claims is not None and claims.started_at == started
    assert claims.expires_at == claims.issued_at + ttl  # a full lifetime still fits
    assert int(renewed["max-age"]) == ttl


async def test_a_session_past_its_maximum_age_gets_401() -> None:
    user = await make_user()
    now = time.time()
    # Issued 5 minutes ago in a session begun 11 minutes ago, under a longer maximum age:
    # its exp is still ahead, but under the maximum age now configured the session is over.
    old = issue_token(user.id, now=now - 300, started_at=int(now - 660))
    with override_settings(SESSION_MAX_AGE_SECONDS=600):
        assert read_token(old) is None
        client = AsyncClient()
        client.cookies[COOKIE_NAME] = old
        assert (await client.get(ME)).status_code == 401

        # A renewed token that nears the end is cut to it, cookie included.
        fresh = issue_token(user.id, now=now, started_at=int(now - 500))
        claims = read_token(fresh)
        assert claims is not None and claims.expires_at == int(now - 500) + 600


async def test_a_token_from_before_session_start_times_counts_from_its_issue() -> None:
    user = await make_user()
    issued = int(time.time()) - 60
    payload = {
        "sub": str(user.id),
        "iat": issued,
        "exp": issued + settings.JWT_TTL_SECONDS,
        "sid": "0" * 32,
        "gen": 0,
    }
    claims = read_token(jwt.encode(payload, settings.JWT_SECRET_KEY, algorithm="HS256"))
    assert claims is not None and claims.started_at == issued
    # A start after the issue, or of the wrong type, is a forgery.
    for started in (issued + 1, "0", True):
        forged = jwt.encode(
            payload | {"auth_time": started}, settings.JWT_SECRET_KEY, algorithm="HS256"
        )
        assert read_token(forged) is None


async def test_old_cookie_of_a_banned_user_is_not_renewed() -> None:
    user = await make_user()
    await do_deactivate_user(user.id)
    client = AsyncClient()
    client.cookies[COOKIE_NAME] = issue_token(
        user.id, now=time.time() - settings.JWT_TTL_SECONDS * 0.6
    )
    response = await client.get(ME)
    assert response.status_code == 401
    assert COOKIE_NAME not in response.cookies
