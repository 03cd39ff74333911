"""Looking up the user behind a session, with a short per-process cache.

The cache bounds how long a ban takes to apply (`AUTH_USER_CACHE_SECONDS`) while
keeping the common request path free of a database round trip.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from django.conf import settings

from accounts.rows import UserRow
from db.pool import autocommit_connection
from db.sql import fetch_one, queries

Q = queries("accounts")

_CACHE_MAX_ENTRIES = 50_000
# user id -> (user or None when unknown, monotonic time fetched). Process-wide, bounded LRU.
_cache: OrderedDict[int, tuple[UserRow | None, float]] = OrderedDict()


async def get_user(user_id: int) -> UserRow | None:
    """The user with this id, at most AUTH_USER_CACHE_SECONDS old; None when unknown."""
    now = time.monotonic()
    cached = _cache.get(user_id)
    if cached is not None and now - cached[1] < settings.AUTH_USER_CACHE_SECONDS:
        _cache.move_to_end(user_id)
        return cached[0]
    async with autocommit_connection() as conn:
        user = await fetch_one(conn, Q["get_user_by_id"], {"user_id": user_id}, UserRow)
    _cache[user_id] = (user, now)
    _cache.move_to_end(user_id)
    while len(_cache) > _CACHE_MAX_ENTRIES:
        _cache.popitem(last=False)
    return user


def forget_user(user_id: int) -> None:
    """Drop a user from this process's cache (after a change made in this process)."""
    _cache.pop(user_id, None)
