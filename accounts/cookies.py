"""Setting and clearing the session cookie on a response."""

from __future__ import annotations

import time
from typing import Final

from django.conf import settings
from django.http import HttpResponseBase

from accounts.auth import COOKIE_NAME
from accounts.tokens import issue_token, token_expiry

SAMESITE: Final = "Lax"


def set_session_cookie(
    response: HttpResponseBase,
    user_id: int,
    generation: int,
    session_id: str | None = None,
    now: float | None = None,
    started_at: int | None = None,
) -> None:
    """Put a fresh token for `user_id` into the response's cookie.

    A new session unless `session_id` names the one being renewed (begun at `started_at`).
    The cookie lasts as long as its token.
    """
    issued = int(time.time() if now is None else now)
    started = issued if started_at is None else started_at
    response.set_cookie(
        COOKIE_NAME,
        issue_token(user_id, generation, session_id, now=issued, started_at=started),
        max_age=token_expiry(issued, started) - issued,
        path="/",
        secure=settings.AUTH_COOKIE_SECURE,
        httponly=True,
        samesite=SAMESITE,
    )


def clear_session_cookie(response: HttpResponseBase) -> None:
    """Tell the browser to drop the session cookie."""
    # The same attributes as when set, so that a browser replaces rather than adds a cookie.
    response.set_cookie(
        COOKIE_NAME,
        "",
        max_age=0,
        path="/",
        secure=settings.AUTH_COOKIE_SECURE,
        httponly=True,
        samesite=SAMESITE,
    )
