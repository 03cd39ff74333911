"""The session cookie as the JSON API's authentication, and its OpenAPI security scheme.

Routes that need a signed-in user pass `auth=SESSION_REQUIRED`; routes that read the
session when there is one, and serve anonymous callers too, pass
`openapi_extra=SESSION_OPTIONAL`. Generated clients and the docs page learn from the
scheme (`apiKey` in cookie `feedapp_session_token`) which routes take the cookie.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from django.http import HttpRequest
from ninja.security import APIKeyCookie

from accounts.auth import COOKIE_NAME, require_user
from accounts.rows import UserRow

# Runs a route's session check, e.g. bounded in time: given the request and the check.
SessionCheck = Callable[[HttpRequest, Coroutine[Any, Any, UserRow]], Awaitable[UserRow]]


class SessionCookie(APIKeyCookie):
    """The session cookie as a route's `auth`: 401 before the body is read, and the
    OpenAPI security scheme on the route. Its class name names the scheme.

    `run`, if given, runs the check (the vote route bounds it by the vote's deadline)."""

    param_name = COOKIE_NAME

    def __init__(self, run: SessionCheck | None = None) -> None:
        # No CSRF token: the API's writes are guarded by the Origin check
        # (accounts.middleware), which covers every route, signed in or not.
        super().__init__(csrf=False)
        self._run = run

    async def authenticate(self, request: HttpRequest, key: str | None) -> UserRow:
        if self._run is None:
            return await require_user(request)
        return await self._run(request, require_user(request))


# `auth=` of every route that needs a signed-in user.
SESSION_REQUIRED = SessionCookie()
# `openapi_extra=` of every route that reads the session when there is one and serves
# anonymous callers too: the cookie, or no credentials at all (`{}`).
SESSION_OPTIONAL: dict[str, Any] = {"security": [{SessionCookie.__name__: []}, {}]}
