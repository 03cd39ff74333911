"""HTTP helpers for the accounts tests: clients with their own address, JSON posts."""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.test import AsyncClient


class AddressedClient(AsyncClient):
    """An async test client whose requests come from `address` (the ASGI peer)."""

    def __init__(self, address: str | None = None, **options: Any) -> None:
        super().__init__(**options)
        # A fresh address per client keeps the per-address throttles of tests apart,
        # also from earlier runs against the same (long-lived) test Valkey.
        self.address = address or random_address()

    def _base_scope(self, **request: Any) -> dict[str, Any]:
        scope: dict[str, Any] = super()._base_scope(**request)  # type: ignore[misc]
        scope["client"] = [self.address, 0]
        return scope

    async def post_json(self, path: str, body: Any, **options: Any) -> Any:
        data = body if isinstance(body, (str, bytes)) else json.dumps(body)
        return await self.post(path, data, content_type="application/json", **options)


def random_address() -> str:
    """A private IPv4 address that no other test is likely to use."""
    a, b, c = uuid.uuid4().bytes[:3]
    return f"10.{a}.{b}.{c % 254 + 1}"


def new_identity(prefix: str = "acc") -> dict[str, str]:
    """A fresh registration body with a unique username and email."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    return {"username": name, "email": f"{name}@example.com", "password": f"pw-{uuid.uuid4().hex}"}


async def register(client: AddressedClient, identity: dict[str, str]) -> dict[str, Any]:
    """Register `identity` through the API; the UserInfo answer."""
    response = await client.post_json("/api/user/register", identity)
    assert response.status_code == 201, response.content
    return response.json()
