"""Who is calling: the optional and the required user, and the session as ninja auth."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja.errors import HttpError
from ninja.security import APIKeyCookie

from accounts.tokens import Claims, read_token
from accounts.users import User, get_user

COOKIE_NAME = "feedapp_session_token"


def session_claims(request: HttpRequest) -> Claims | None:
    """The valid claims of the request's session cookie, decoded once per request."""
    if not hasattr(request, "feedapp_claims"):
        token = request.COOKIES.get(COOKIE_NAME)
        request.feedapp_claims = read_token(token) if token else None  # type: ignore[attr-defined]
    return request.feedapp_claims  # type: ignore[attr-defined]


async def optional_user(request: HttpRequest) -> User | None:
    """The active user behind the session cookie, or None (anonymous, invalid, banned)."""
    if hasattr(request, "feedapp_user"):
        return request.feedapp_user
    claims = session_claims(request)
    user = await get_user(claims.user_id) if claims else None
    if user is not None and not user.is_active:
        user = None
    request.feedapp_user = user  # type: ignore[attr-defined]
    return user


async def require_user(request: HttpRequest) -> User:
    """The active user behind the session cookie; 401 otherwise."""
    user = await optional_user(request)
    if user is None:
        raise HttpError(401, "Not authenticated")
    return user


class SessionCookie(APIKeyCookie):
    """The session cookie as a route's `auth`: 401 before the body is read, and the
    OpenAPI security scheme (`apiKey` in cookie `feedapp_session_token`) on the route."""

    param_name = COOKIE_NAME

    def __init__(self) -> None:
        # No CSRF token: the API's writes are guarded by the Origin check
        # (accounts.middleware), which covers every route, signed in or not.
        super().__init__(csrf=False)

    async def authenticate(self, request: HttpRequest, key: str | None) -> User:
        return await require_user(request)


# `auth=` of every route that needs a signed-in user.
SESSION_REQUIRED = SessionCookie()
# `openapi_extra=` of every route that reads the session when there is one and serves
# anonymous callers too: the cookie, or no credentials at all (`{}`).
SESSION_OPTIONAL: dict[str, Any] = {"security": [{SessionCookie.__name__: []}, {}]}
