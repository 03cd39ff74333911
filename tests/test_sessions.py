"""Server-side revocation of sessions (issue 12, item 9): log out, log out everywhere,
password change and ban end tokens on the server, not only in the browser."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.management.commands import changepassword
from django.core.management import call_command
from django.test import AsyncClient, override_settings

from accounts.auth import COOKIE_NAME
from accounts.services import do_deactivate_user, do_end_all_sessions, do_reactivate_user
from accounts.tokens import issue_token, read_token
from accounts.users import forget_user
from db.pool import connection
from db.sql import execute
from tests.accounts_client import AddressedClient, new_identity, register
from tests.admin_client import make_admin

ME = "/api/user/me"
LOGIN = "/api/user/login"
LOGOUT = "/api/user/logout"
LOGOUT_EVERYWHERE = "/api/user/logout-everywhere"
PASSWORD = "/api/user/password"


def copy_of(client: AsyncClient) -> AsyncClient:
    """Another client holding the same session token (a stolen or copied cookie)."""
    other = AsyncClient()
    other.cookies[COOKIE_NAME] = client.cookies[COOKIE_NAME].value
    return other


async def signed_in(identity: dict[str, str] | None = None) -> tuple[AddressedClient, Any]:
    identity = identity or new_identity()
    client = AddressedClient()
    info = await register(client, identity)
    return client, info


async def login(identity: dict[str, str]) -> AddressedClient:
    client = AddressedClient()
    body = {"username": identity["username"], "password": identity["password"]}
    response = await client.post_json(LOGIN, body)
    assert response.status_code == 204, response.content
    return client


async def test_logout_ends_the_token_itself_not_only_the_cookie() -> None:
    client, _ = await signed_in()
    stolen = copy_of(client)
    assert (await stolen.get(ME)).status_code == 200

    response = await client.post(LOGOUT)
    assert response.status_code == 204
    assert response.cookies[COOKIE_NAME].value == ""
    assert (await stolen.get(ME)).status_code == 401
    # Logging out again, or without a session, is harmless.
    assert (await stolen.post(LOGOUT)).status_code == 204
    assert (await AsyncClient().post(LOGOUT)).status_code == 204


async def test_logout_ends_renewed_copies_of_the_session_too() -> None:
    client, info = await signed_in()
    old = issue_token(info["id"], now=time.time() - settings.JWT_TTL_SECONDS * 0.6)
    client.cookies[COOKIE_NAME] = old
    renewed = await client.get(ME)  # past half its life: renewed, same session
    assert renewed.status_code == 200
    new_token = renewed.cookies[COOKIE_NAME].value
    old_claims, new_claims = read_token(old), read_token(new_token)
    assert old_claims is not None and new_claims is not None
    assert new_claims.session_id == old_claims.session_id
    assert new_claims.expires_at > old_claims.expires_at

    holder_of_old = AsyncClient()
    holder_of_old.cookies[COOKIE_NAME] = old
    assert (await client.post(LOGOUT)).status_code == 204  # logs out with the renewed one
    assert (await holder_of_old.get(ME)).status_code == 401


async def test_a_logout_in_another_process_applies_within_the_cache_delay() -> None:
    client, info = await signed_in()
    claims = read_token(client.cookies[COOKIE_NAME].value)
    assert claims is not None
    with override_settings(AUTH_USER_CACHE_SECONDS=0.5):
        assert (await client.get(ME)).status_code == 200  # cached in this process now
        # Straight into the database, as another web process's logout does.
        async with connection() as conn:
            await execute(
                conn,
                "INSERT INTO revoked_session (session_id, user_id, expires_at)"
                " VALUES (%s, %s, now() + interval '1 hour')",
                (claims.session_id, info["id"]),
            )
        deadline = time.monotonic() + 10
        status = 200
        while status == 200 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            status = (await client.get(ME)).status_code
    assert status == 401


async def test_logout_everywhere_ends_every_session_of_the_user() -> None:
    identity = new_identity()
    first, _ = await signed_in(identity)
    second = await login(identity)
    response = await first.post(LOGOUT_EVERYWHERE)
    assert response.status_code == 204
    assert response.cookies[COOKIE_NAME].value == ""
    assert (await copy_of(first).get(ME)).status_code == 401
    assert (await second.get(ME)).status_code == 401
    # A new sign-in starts a session of the new generation.
    assert (await (await login(identity)).get(ME)).status_code == 200
    # Anonymous callers cannot use it.
    assert (await AsyncClient().post(LOGOUT_EVERYWHERE)).status_code == 401


async def test_a_password_change_ends_the_other_sessions() -> None:
    identity = new_identity()
    client, _ = await signed_in(identity)
    other = await login(identity)
    stolen = copy_of(client)

    wrong = await client.post_json(
        PASSWORD, {"current_password": "not-it", "new_password": "a-new-password"}
    )
    assert wrong.status_code == 403
    assert wrong.json() == {"detail": "The current password is wrong"}
    assert (await other.get(ME)).status_code == 200  # nothing changed

    new_password = "a-brand-new-password"
    response = await client.post_json(
        PASSWORD, {"current_password": identity["password"], "new_password": new_password}
    )
    assert response.status_code == 204
    assert COOKIE_NAME in response.cookies  # this client stays signed in
    assert (await client.get(ME)).status_code == 200
    assert (await other.get(ME)).status_code == 401
    assert (await stolen.get(ME)).status_code == 401

    old = {"username": identity["username"], "password": identity["password"]}
    assert (await AddressedClient().post_json(LOGIN, old)).status_code == 401
    assert (await login(identity | {"password": new_password})).cookies[COOKIE_NAME].value


async def test_manage_py_changepassword_ends_every_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    identity = new_identity()
    client, info = await signed_in(identity)
    new_password = "an-operator-reset-this"
    monkeypatch.setattr(changepassword.Command, "_get_pass", lambda self, prompt="": new_password)
    await sync_to_async(call_command)("changepassword", identity["username"])
    # The command runs in a process of its own; this one would notice within
    # AUTH_USER_CACHE_SECONDS, as it does a ban.
    forget_user(info["id"])
    assert (await client.get(ME)).status_code == 401
    assert (await (await login(identity | {"password": new_password})).get(ME)).status_code == 200


async def test_a_ban_ends_sessions_for_good() -> None:
    identity = new_identity()
    client, info = await signed_in(identity)
    assert await do_deactivate_user(info["id"])
    assert await do_reactivate_user(info["id"])
    assert (await client.get(ME)).status_code == 401
    assert (await (await login(identity)).get(ME)).status_code == 200


async def test_ending_all_sessions_signs_the_user_out_of_the_admin_too() -> None:
    staff = await make_admin()
    assert (await staff.client.get("/admin/")).status_code == 200
    assert await do_end_all_sessions(staff.user.id)
    response = await staff.client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
