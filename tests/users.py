"""Making users and signed-in clients for tests, straight through the SQL layer."""

from __future__ import annotations

import uuid

from django.test import AsyncClient

from accounts.auth import COOKIE_NAME
from accounts.rows import UserRow
from accounts.tokens import issue_token
from db.pool import connection
from db.sql import fetch_one, queries

# A hash no password matches (Django's unusable-password marker).
UNUSABLE_PASSWORD = "!test-user"


async def make_user(prefix: str = "user") -> UserRow:
    """A new active user with a unique name."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    async with connection() as conn:
        user = await fetch_one(
            conn,
            queries("accounts")["create_user"],
            {"username": name, "email": f"{name}@example.com", "password": UNUSABLE_PASSWORD},
            UserRow,
        )
    assert user is not None
    return user


def client_for(user: UserRow | None) -> AsyncClient:
    """An async test client signed in as `user` (anonymous for None)."""
    client = AsyncClient()
    if user is not None:
        client.cookies[COOKIE_NAME] = issue_token(user.id)
    return client
