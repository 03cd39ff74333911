"""Helpers for the poll tests: creating polls through the API and asking user_may()."""

from __future__ import annotations

from typing import Any

from django.test import AsyncClient

from db.pool import connection
from db.sql import fetch_value


async def create_poll(client: AsyncClient, **fields: Any) -> dict[str, Any]:
    """Create a poll through the API (201 asserted); its JSON."""
    body = {"question": "Which one?", "options": ["this", "that"], **fields}
    response = await client.post("/api/poll/create", body, content_type="application/json")
    assert response.status_code == 201, response.content
    return response.json()


async def user_may(user_id: int | None, permission: str, poll_id: int) -> bool:
    """The database's answer to 'may this user do this on this poll now?'."""
    async with connection() as conn:
        return await fetch_value(
            conn,
            "SELECT user_may(%(user_id)s::bigint, %(permission)s::poll_permission,"
            " %(poll_id)s::bigint, now())",
            {"user_id": user_id, "permission": permission, "poll_id": poll_id},
        )


async def feed_ids(client: AsyncClient, **params: Any) -> list[int]:
    """The poll ids of one feed page."""
    response = await client.get("/api/poll/all", params)
    assert response.status_code == 200, response.content
    return [poll["id"] for poll in response.json()]
