"""The API's error answers: `{"detail": str}`, or the 422 list of validation issues."""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI, Schema
from ninja.errors import ValidationError as RequestInvalid

from accounts.throttle import TooManyRequests
from feedapp.middleware import body_too_large

# The class names are the OpenAPI component names, which generated clients turn into
# type names: `HTTPValidationError` and `ValidationError` are FastAPI's, as the first
# backend served them (see docs/openapi.json).


class Detail(Schema):
    """Every error other than a validation error."""

    detail: str


class ValidationError(Schema):
    """One issue of a 422 answer: where (`loc`), what (`msg`) and its kind (`type`)."""

    type: str
    loc: list[str | int]
    msg: str


class HTTPValidationError(Schema):
    """A 422 answer: what was wrong with the request, one issue per field."""

    detail: list[ValidationError]


def install_error_handlers(api: NinjaAPI) -> None:
    """Answer validation errors, throttling and oversized bodies in the contract's shapes."""

    def validation_error(request: HttpRequest, exc: object) -> HttpResponse:
        assert isinstance(exc, RequestInvalid)
        # Exactly type, loc and msg: pydantic's `ctx` and `input` may echo what was sent,
        # and a password must never come back.
        issues = [
            {"type": error["type"], "loc": list(error["loc"]), "msg": error["msg"]}
            for error in exc.errors
        ]
        return api.create_response(request, {"detail": issues}, status=422)

    def too_many_requests(request: HttpRequest, exc: object) -> HttpResponse:
        assert isinstance(exc, TooManyRequests)
        response = api.create_response(request, {"detail": exc.message}, status=429)
        response["Retry-After"] = str(exc.retry_after)
        return response

    def body_too_big(request: HttpRequest, exc: object) -> HttpResponse:
        # A body sent without Content-Length passes the middleware and is caught when read.
        return body_too_large()

    api.add_exception_handler(RequestInvalid, validation_error)
    api.add_exception_handler(TooManyRequests, too_many_requests)
    api.add_exception_handler(RequestDataTooBig, body_too_big)
