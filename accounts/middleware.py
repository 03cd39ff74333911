"""The accounts middleware: the API's CSRF defence and session renewal (async-capable).

- `origin_check_middleware`: 403 for a state-changing API request from a foreign origin.
- `session_renewal_middleware`: re-issues the session cookie once past half its life.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.utils.decorators import sync_and_async_middleware

from accounts.auth import COOKIE_NAME
from accounts.cookies import set_session_cookie
from feedapp.errors import Forbidden
from feedapp.middleware import GetResponse, is_api_request, refusal, wrap

log = logging.getLogger(__name__)

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


# --- Origin check -------------------------------------------------------------------------


def _request_origin(request: HttpRequest) -> str | None:
    """The Origin header, or the origin of the Referer; None when the request has neither."""
    origin = request.headers.get("Origin")
    if origin is not None:
        return origin.strip()
    referer = request.headers.get("Referer")
    if referer is None:
        return None
    parts = urlsplit(referer.strip())
    # A Referer that names no origin cannot be matched against the list: refuse it.
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else "null"


def _check_origin(request: HttpRequest) -> HttpResponseBase | None:
    if request.method not in UNSAFE_METHODS or not is_api_request(request):
        return None
    origin = _request_origin(request)
    # Browsers send Origin (or Referer) with cross-site requests; other clients carry no
    # ambient cookie of a victim, so a request with neither needs no defence.
    if origin is None:
        return None
    allowed = {value.rstrip("/").lower() for value in settings.FEEDAPP_ALLOWED_ORIGINS}
    if origin.rstrip("/").lower() in allowed:
        return None
    log.warning("refused %s %s from origin %r", request.method, request.path, origin[:200])
    return refusal(Forbidden("Origin not allowed"))


@sync_and_async_middleware
def origin_check_middleware(get_response: GetResponse) -> Callable[..., object]:
    """403 for a state-changing API request sent from an origin not in the allowed list."""
    return wrap(get_response, before=_check_origin)


# --- Session renewal ----------------------------------------------------------------------


def _renew_session(request: HttpRequest, response: HttpResponseBase) -> None:
    # Only when a view resolved an active user from the cookie (accounts.auth records
    # both on the request) and the view did not set or clear the cookie itself.
    user = getattr(request, "feedapp_user", None)
    claims = getattr(request, "feedapp_claims", None)
    if user is None or claims is None or COOKIE_NAME in response.cookies:
        return
    if claims.user_id == user.id and claims.renewable():
        # The same session (revoking it later ends this renewed token too), as old as it is.
        set_session_cookie(
            response, user.id, claims.generation, claims.session_id, started_at=claims.started_at
        )


@sync_and_async_middleware
def session_renewal_middleware(get_response: GetResponse) -> Callable[..., object]:
    """Re-issue the session cookie of an active user once the token is past half its life."""
    return wrap(get_response, after=_renew_session)
