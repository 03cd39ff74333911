"""Looking up the user behind a session, with a short per-process cache.

The cache bounds how long a ban, a logout or the end of all of a user's sessions takes
to apply in another process (`AUTH_USER_CACHE_SECONDS`) while keeping the common
request path free of a database round trip. Changes made in this process apply at once.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import fields
from typing import TypeVar

from django.conf import settings

from accounts.rows import SessionUserRow, UserRow
from accounts.tokens import Claims
from db.pool import run_read
from db.sql import fetch_one, queries

Q = queries("accounts")

_CACHE_MAX_ENTRIES = 50_000
K = TypeVar("K")
V = TypeVar("V")


class _Cache(OrderedDict[K, tuple[V, float]]):
    """A bounded LRU of values with the monotonic time they were fetched."""

    def fresh(self, key: K, now: float) -> tuple[V, float] | None:
        entry = self.get(key)
        if entry is None or now - entry[1] >= settings.AUTH_USER_CACHE_SECONDS:
            return None
        self.move_to_end(key)
        return entry

    def put(self, key: K, value: V, now: float) -> None:
        self[key] = (value, now)
        self.move_to_end(key)
        while len(self) > _CACHE_MAX_ENTRIES:
            self.popitem(last=False)


# user id -> the user (None when unknown); session id -> whether it was revoked.
_users: _Cache[int, UserRow | None] = _Cache()
_revoked: _Cache[str, bool] = _Cache()
_USER_FIELDS = [field.name for field in fields(UserRow)]


async def get_user(user_id: int) -> UserRow | None:
    """The user with this id, at most AUTH_USER_CACHE_SECONDS old; None when unknown."""
    now = time.monotonic()
    cached = _users.fresh(user_id, now)
    if cached is not None:
        return cached[0]
    user = await run_read(
        lambda conn: fetch_one(conn, Q["get_user_by_id"], {"user_id": user_id}, UserRow)
    )
    _users.put(user_id, user, now)
    return user


async def get_session_user(claims: Claims) -> UserRow | None:
    """The active user whose session these (valid) claims are, if it still holds.

    None when the user is unknown or banned, when all their sessions were ended after
    this one began (an older generation), or when this session was revoked. Both
    answers are at most AUTH_USER_CACHE_SECONDS old: one query refreshes them.
    """
    now = time.monotonic()
    user_entry = _users.fresh(claims.user_id, now)
    revoked_entry = _revoked.fresh(claims.session_id, now)
    if user_entry is not None and revoked_entry is not None:
        user, revoked = user_entry[0], revoked_entry[0]
    else:
        params = {"user_id": claims.user_id, "session_id": claims.session_id}
        row = await run_read(
            lambda conn: fetch_one(conn, Q["get_session_user"], params, SessionUserRow)
        )
        user = UserRow(**{name: getattr(row, name) for name in _USER_FIELDS}) if row else None
        revoked = row.session_revoked if row else False
        _users.put(claims.user_id, user, now)
        _revoked.put(claims.session_id, revoked, now)
    if user is None or not user.is_active or revoked:
        return None
    if user.session_generation != claims.generation:
        return None
    return user


def forget_user(user_id: int) -> None:
    """Drop a user from this process's cache (after a change made in this process)."""
    _users.pop(user_id, None)


def forget_session(session_id: str) -> None:
    """Treat a session as revoked in this process at once (other processes: in seconds)."""
    _revoked.put(session_id, True, time.monotonic())
