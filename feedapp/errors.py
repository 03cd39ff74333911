"""The API's error answers: `{"detail": str}`, or the 422 list of validation issues."""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI, Schema
from ninja.errors import ValidationError


class Unavailable(Exception):
    """A service the request needs is down (or cannot confirm in time): 503 with
    Retry-After. Retrying is safe: what was refused either did not happen or is idempotent.
    """

    def __init__(self, message: str, retry_after: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = max(1, retry_after)


# The OpenAPI description of the header sent with 429 and 503.
RETRY_AFTER_HEADER = {
    "description": "Seconds to wait before sending the request again",
    "schema": {"type": "integer"},
}


class Detail(Schema):
    """Every error other than a validation error."""

    detail: str


class ValidationIssue(Schema):
    type: str
    loc: list[str | int]
    msg: str


class ValidationDetail(Schema):
    """A 422 answer: what was wrong with the request, one issue per field."""

    detail: list[ValidationIssue]


def install_error_handlers(api: NinjaAPI) -> None:
    """Answer validation errors, throttling, outages and oversized bodies in the contract's
    shapes."""
    # Imported here: the data layer raises Unavailable, and must not import the web stack.
    from accounts.throttle import TooManyRequests
    from feedapp.middleware import body_too_large

    def validation_error(request: HttpRequest, exc: object) -> HttpResponse:
        assert isinstance(exc, ValidationError)
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

    def unavailable(request: HttpRequest, exc: object) -> HttpResponse:
        assert isinstance(exc, Unavailable)
        response = api.create_response(request, {"detail": exc.message}, status=503)
        response["Retry-After"] = str(exc.retry_after)
        # Not logged by Django as a server error per request: the outage behind it is
        # logged once where it is noticed (feedapp.outages).
        response._has_been_logged = True  # type: ignore[attr-defined]
        return response

    def body_too_big(request: HttpRequest, exc: object) -> HttpResponse:
        # A body sent without Content-Length passes the middleware and is caught when read.
        return body_too_large()

    api.add_exception_handler(ValidationError, validation_error)
    api.add_exception_handler(TooManyRequests, too_many_requests)
    api.add_exception_handler(RequestDataTooBig, body_too_big)
    api.add_exception_handler(Unavailable, unavailable)
