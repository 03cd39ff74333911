"""Signed-in admin clients for tests, and reading the admin's history."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from asgiref.sync import sync_to_async
from django.db import close_old_connections

from accounts.rows import UserRow
from accounts.services import do_create_user
from db.pool import connection
from db.sql import fetch_all
from tests.accounts_client import AddressedClient


class AdminClient(AddressedClient):
    """An async test client for /admin/ (its session cookie kept between requests)."""

    async def request(self, **request: Any) -> Any:
        # What a server does when a request starts, and Django's test client skips (to
        # keep a TestCase's transaction): return the views' thread's connection to the
        # pool, so that the request gets a checked one (as after a PostgreSQL restart).
        await sync_to_async(close_old_connections)()
        return await super().request(**request)

    async def sign_in(self, login: str, password: str) -> Any:
        return await self.post(
            "/admin/login/?next=/admin/", {"username": login, "password": password}
        )

    async def action(self, changelist: str, action: str, ids: list[int], **fields: Any) -> Any:
        """Run a changelist action on these rows (as the action menu's form posts it)."""
        body = {"action": action, "_selected_action": [str(i) for i in ids], **fields}
        return await self.post(changelist, body)


@dataclass(frozen=True)
class Admin:
    user: UserRow
    password: str
    client: AdminClient


async def sign_in_over_http(client: httpx.AsyncClient, login: str, password: str) -> None:
    """Sign in to a real server's /admin/ through its form, as a browser does."""
    form = await client.get("/admin/login/")
    assert form.status_code == 200, form.text
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
    assert token is not None
    response = await client.post(
        "/admin/login/?next=/admin/",
        data={"username": login, "password": password, "csrfmiddlewaretoken": token.group(1)},
    )
    assert response.status_code == 302, response.text
    assert response.headers["Location"] == "/admin/"


async def make_admin(superuser: bool = False) -> Admin:
    """A new staff member (superuser if asked), signed in to the admin."""
    name = f"staff_{uuid.uuid4().hex[:10]}"
    password = f"pw-{uuid.uuid4().hex}"
    user = await do_create_user(
        name, f"{name}@example.com", password, is_staff=True, is_superuser=superuser
    )
    client = AdminClient()
    response = await client.sign_in(name, password)
    assert response.status_code == 302, response.content
    assert response["Location"] == "/admin/"
    return Admin(user, password, client)


@dataclass(frozen=True)
class LogLine:
    action_flag: int
    user_id: int
    change_message: str


async def admin_log(app_label: str, model: str, object_id: int) -> list[LogLine]:
    """The admin's history of one object, oldest first."""
    async with connection() as conn:
        return await fetch_all(
            conn,
            """
            SELECT l.action_flag, l.user_id, l.change_message
            FROM django_admin_log l
            JOIN django_content_type t ON t.id = l.content_type_id
            WHERE t.app_label = %s AND t.model = %s AND l.object_id = %s
            ORDER BY l.id
            """,
            (app_label, model, str(object_id)),
            LogLine,
        )
