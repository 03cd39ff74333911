"""Project-wide request guards, usable under ASGI without a thread per request.

`body_limit_middleware` answers 413 for a declared body over REQUEST_BODY_LIMIT_BYTES
before it is read; a body sent without a length is caught when read (Django raises
RequestDataTooBig, which the API answers with the same 413, see feedapp.errors).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.utils.decorators import sync_and_async_middleware

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
        return JsonResponse({"detail": "Invalid Content-Length header"}, status=400)
    if int(declared) > settings.REQUEST_BODY_LIMIT_BYTES:
        return body_too_large()
    return None


def body_too_large() -> JsonResponse:
    """The 413 answer."""
    limit = settings.REQUEST_BODY_LIMIT_BYTES
    return JsonResponse({"detail": f"Request body larger than {limit} bytes"}, status=413)


@sync_and_async_middleware
def body_limit_middleware(get_response: GetResponse) -> Callable[..., object]:
    """Refuse a request whose Content-Length is over the limit before its body is read."""
    return wrap(get_response, before=_check_body_length)
