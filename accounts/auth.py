"""Who is calling: the user behind a session token, for every transport.

HTTP views use `optional_user` and `require_user` (the cookie of the request, decoded
once per request); the WebSocket route passes its handshake's cookie to
`session_from_token`. Both resolve a token the same way: valid claims, a known user, that
user still active, and the session neither logged out nor ended (accounts.users).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpRequest

from accounts.rows import UserRow
from accounts.tokens import Claims, read_token
from accounts.users import get_session_user
from feedapp.errors import NotAuthenticated

COOKIE_NAME = "feedapp_session_token"


async def _active_user(claims: Claims | None) -> UserRow | None:
    # Active, and the session neither revoked nor ended with all the user's sessions.
    return await get_session_user(claims) if claims else None


@dataclass(frozen=True)
class Session:
    """A signed-in caller: the user and the claims of their token (its session and expiry)."""

    user: UserRow
    claims: Claims


async def session_from_token(token: str | None) -> Session | None:
    """The session a token holds, while valid; None when missing, invalid, unknown, banned
    or logged out."""
    claims = read_token(token) if token else None
    user = await _active_user(claims)
    return Session(user, claims) if user is not None and claims is not None else None


def session_claims(request: HttpRequest) -> Claims | None:
    """The valid claims of the request's session cookie, decoded once per request."""
    if not hasattr(request, "feedapp_claims"):
        token = request.COOKIES.get(COOKIE_NAME)
        request.feedapp_claims = read_token(token) if token else None  # type: ignore[attr-defined]
    return request.feedapp_claims  # type: ignore[attr-defined]


async def optional_user(request: HttpRequest) -> UserRow | None:
    """The active user behind the session cookie, or None (anonymous, invalid, banned,
    logged out)."""
    if hasattr(request, "feedapp_user"):
        return request.feedapp_user
    user = await _active_user(session_claims(request))
    request.feedapp_user = user  # type: ignore[attr-defined]
    return user


async def optional_session(request: HttpRequest) -> Session | None:
    """The caller's session (user and token claims), or None for anonymous callers."""
    user = await optional_user(request)
    claims = session_claims(request)
    return Session(user, claims) if user is not None and claims is not None else None


async def require_user(request: HttpRequest) -> UserRow:
    """The active user behind the session cookie; NotAuthenticated otherwise."""
    user = await optional_user(request)
    if user is None:
        raise NotAuthenticated()
    return user
