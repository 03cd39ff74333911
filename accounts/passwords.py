"""Password hashing (Argon2id through Django's hashers), off the event loop.

Hashing takes tens of milliseconds of CPU by design, so it runs in a worker thread
(`thread_sensitive=False`: it must not queue behind the single sync thread).
"""

from __future__ import annotations

import secrets

from asgiref.sync import sync_to_async
from django.contrib.auth.hashers import make_password, verify_password

_dummy_hash: str | None = None


async def hash_password(password: str) -> str:
    """The stored form of `password` with the preferred hasher."""
    return await sync_to_async(make_password, thread_sensitive=False)(password)


async def _dummy() -> str:
    """A real hash of a random secret, so that checking a missing account costs the same."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = await hash_password(secrets.token_urlsafe(32))
    return _dummy_hash


async def check_password(password: str, encoded: str | None) -> tuple[bool, bool]:
    """Whether `password` matches `encoded` (None: no account), and whether to rehash it.

    A missing account is checked against a dummy hash, so that "no such user" and "wrong
    password" take about the same time.
    """
    target = encoded if encoded is not None else await _dummy()
    matches, must_update = await sync_to_async(verify_password, thread_sensitive=False)(
        password, target
    )
    found = encoded is not None and matches
    return found, found and must_update
