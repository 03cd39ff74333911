"""Project-wide middleware, all async-native: no request of the API waits for a thread.

`body_limit_middleware` answers 413 for a declared body over REQUEST_BODY_LIMIT_BYTES
before it is read; a body sent without a length is caught when read (Django raises
RequestDataTooBig, which the API answers with the same 413, see feedapp.api).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.middleware.common import CommonMiddleware
from django.middleware.csrf import CsrfViewMiddleware
from django.utils.decorators import sync_and_async_middleware
from django.utils.deprecation import MiddlewareMixin

from feedapp.errors import PayloadTooLarge, ServiceError

# The JSON API's paths: no per-request thread, no Django session or CSRF middleware.
API_PREFIX = "/api/"


def is_api_request(request: HttpRequest) -> bool:
    """Whether the request is for the JSON API: the one test every middleware uses.

    `path_info` is the path below the script prefix (the ASGI root_path or
    FORCE_SCRIPT_NAME), so the answer holds wherever the app is mounted.
    """
    return request.path_info.startswith(API_PREFIX)


GetResponse = Callable[[HttpRequest], HttpResponseBase | Awaitable[HttpResponseBase]]
Check = Callable[[HttpRequest], HttpResponseBase | None]
After = Callable[[HttpRequest, HttpResponseBase], None]


def wrap(
    get_response: GetResponse, before: Check | None = None, after: After | None = None
) -> Callable[[HttpRequest], HttpResponseBase | Awaitable[HttpResponseBase]]:
    """Wrap `get_response` with a check before and a hook after, in its own (a)sync flavour."""
    if iscoroutinefunction(get_response):

        async def async_middleware(request: HttpRequest) -> HttpResponseBase:
            refused = before(request) if before else None
            if refused is not None:
                return refused
            response = await get_response(request)
            if after:
                after(request, response)
            return response

        return async_middleware

    def sync_middleware(request: HttpRequest) -> HttpResponseBase:
        refused = before(request) if before else None
        if refused is not None:
            return refused
        response = get_response(request)
        assert isinstance(response, HttpResponseBase)
        if after:
            after(request, response)
        return response

    return sync_middleware


def _check_body_length(request: HttpRequest) -> HttpResponseBase | None:
    declared = request.META.get("CONTENT_LENGTH") or ""
    if not declared:
        return None
    if not declared.isdigit():
        return refusal(ServiceError("Invalid Content-Length header"))
    if int(declared) > settings.REQUEST_BODY_LIMIT_BYTES:
        return body_too_large()
    return None


def refusal(error: ServiceError) -> JsonResponse:
    """A middleware's answer before any view runs, in the API's `{"detail"}` shape."""
    response = JsonResponse({"detail": error.message}, status=error.status_code)
    for name, value in error.headers().items():
        response[name] = value
    return response


def body_too_large() -> JsonResponse:
    """The 413 answer."""
    limit = settings.REQUEST_BODY_LIMIT_BYTES
    return refusal(PayloadTooLarge(f"Request body larger than {limit} bytes"))


@sync_and_async_middleware
def body_limit_middleware(get_response: GetResponse) -> Callable[..., object]:
    """Refuse a request whose Content-Length is over the limit before its body is read."""
    return wrap(get_response, before=_check_body_length)


def _json_errors(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    # ninja answers a wrong method in plain text and Django an unknown path or a crash in
    # HTML (a traceback page with DEBUG): under /api/ every error is `{"detail": ...}`.
    if response.status_code < 400 or not is_api_request(request):
        return response
    if response.get("Content-Type", "").startswith("application/json"):
        return response
    answer = JsonResponse({"detail": response.reason_phrase}, status=response.status_code)
    for name in ("Allow", "Retry-After"):
        if name in response:
            answer[name] = response[name]
    return answer


@sync_and_async_middleware
def json_errors_middleware(get_response: GetResponse) -> Callable[..., object]:
    """Every error answer under /api/ in JSON, whoever made it (Django, ninja, a crash)."""
    if iscoroutinefunction(get_response):

        async def async_middleware(request: HttpRequest) -> HttpResponseBase:
            response = await get_response(request)
            return _json_errors(request, response)

        return async_middleware

    def sync_middleware(request: HttpRequest) -> HttpResponseBase:
        response = get_response(request)
        assert isinstance(response, HttpResponseBase)
        return _json_errors(request, response)

    return sync_middleware


def _standard_headers(request: HttpRequest, response: HttpResponseBase) -> None:
    # What SecurityMiddleware, XFrameOptionsMiddleware and CommonMiddleware set, without
    # their thread hop. Without Content-Length a server must close the connection to end
    # the body, and keep-alive is lost.
    if isinstance(response, HttpResponse) and "Content-Length" not in response.headers:
        response.headers["Content-Length"] = str(len(response.content))
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", settings.X_FRAME_OPTIONS)
    response.headers.setdefault("Referrer-Policy", settings.SECURE_REFERRER_POLICY)
    response.headers.setdefault(
        "Cross-Origin-Opener-Policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY
    )
    if settings.SECURE_HSTS_SECONDS and request.is_secure():
        response.headers.setdefault(
            "Strict-Transport-Security", f"max-age={settings.SECURE_HSTS_SECONDS}"
        )


@sync_and_async_middleware
def standard_headers_middleware(get_response: GetResponse) -> Callable[..., object]:
    """Security headers and Content-Length on every response."""
    return wrap(get_response, after=_standard_headers)


def outside_api(middleware: type[MiddlewareMixin]) -> Callable[[GetResponse], Any]:
    """Run a Django middleware on every path except the JSON API's.

    Under ASGI, Django's MiddlewareMixin runs each hook through
    sync_to_async(thread_sensitive=True): one shared thread for every request in the
    process. The API needs none of sessions, messages, Django's CSRF tokens (it checks
    Origin) or CommonMiddleware, so only the admin pays for them.
    """

    @sync_and_async_middleware
    def factory(get_response: GetResponse) -> Callable[..., object]:
        # Typed loosely: both callables are sync or async together, as Django arranges.
        downstream: Any = get_response
        inner: Any = middleware(downstream)
        if iscoroutinefunction(get_response):

            async def async_middleware(request: HttpRequest) -> HttpResponseBase:
                if is_api_request(request):
                    return await downstream(request)
                return await inner(request)

            return async_middleware

        def sync_middleware(request: HttpRequest) -> HttpResponseBase:
            handler = downstream if is_api_request(request) else inner
            return handler(request)

        return sync_middleware

    return factory


session_middleware = outside_api(SessionMiddleware)
common_middleware = outside_api(CommonMiddleware)
csrf_middleware = outside_api(CsrfViewMiddleware)
authentication_middleware = outside_api(AuthenticationMiddleware)
message_middleware = outside_api(MessageMiddleware)
