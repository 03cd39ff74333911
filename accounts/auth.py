"""The two helpers every view uses to learn who is calling: optional and required user."""

from __future__ import annotations

from django.http import HttpRequest

from accounts.rows import UserRow
from accounts.tokens import Claims, read_token
from accounts.users import get_session_user
from feedapp.errors import NotAuthenticated

COOKIE_NAME = "feedapp_session_token"


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
    claims = session_claims(request)
    user = await get_session_user(claims) if claims else None
    request.feedapp_user = user  # type: ignore[attr-defined]
    return user


async def require_user(request: HttpRequest) -> UserRow:
    """The active user behind the session cookie; NotAuthenticated otherwise."""
    user = await optional_user(request)
    if user is None:
        raise NotAuthenticated()
    return user
