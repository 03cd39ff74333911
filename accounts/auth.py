"""Who is calling: the user behind a session token, for every transport.

HTTP views use `optional_user` and `require_user` (the cookie of the request, decoded
once per request); the WebSocket route passes its handshake's cookie to
`user_from_token`. Both resolve a token the same way: valid claims, a known user, that
user still active, and the session neither logged out nor ended (accounts.users).
"""

from __future__ import annotations

from django.http import HttpRequest

from accounts.rows import UserRow
from accounts.tokens import Claims, read_token
from accounts.users import get_session_user
from feedapp.errors import NotAuthenticated

COOKIE_NAME = "feedapp_session_token"


async def _active_user(claims: Claims | None) -> UserRow | None:
    # Active, and the session neither revoked nor ended with all the user's sessions.
    return await get_session_user(claims) if claims else None


async def user_from_token(token: str | None) -> UserRow | None:
    """The active user a session token names; None when missing, invalid, unknown, banned
    or logged out."""
    return await _active_user(read_token(token) if token else None)


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


async def require_user(request: HttpRequest) -> UserRow:
    """The active user behind the session cookie; NotAuthenticated otherwise."""
    user = await optional_user(request)
    if user is None:
        raise NotAuthenticated()
    return user
