"""The JSON API root: one django-ninja instance that every app adds its router to, and the
one place where errors become answers.

Services raise feedapp.errors.ServiceError subclasses; `service_error` renders each as
`{"detail": message}` with its status (and Retry-After for rate limits and outages). Request
validation answers 422 with the issues, a body that is not JSON 400 (415 when not even
sent as JSON), and a body too large to read 413. What goes wrong outside a view (an
unknown path, a wrong method, a crash) is made JSON by feedapp.middleware.
"""

from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import ConfigError, HttpError, ValidationError
from ninja.operation import Operation

from accounts.views import router as accounts_router
from feedapp import health
from feedapp.errors import ServiceError, UnsupportedMediaType
from feedapp.middleware import body_too_large
from feedapp.openapi_errors import add_error_responses
from feedapp.rendering import JsonParser, JsonRenderer
from moderation.views import router as moderation_router
from polls.views import router as polls_router
from realtime.views import router as realtime_router
from votes.views import router as votes_router

JSON_TYPES = ("application/json",)


class JsonOnlyParser(JsonParser):
    """Bodies must say they are JSON: a form or `text/plain` post is refused (415), not
    parsed as JSON anyway (which would also let a cross-site form post reach a view)."""

    def parse_body(self, request: HttpRequest) -> Any:
        content_type = request.content_type or ""
        if content_type.lower() not in JSON_TYPES:
            raise UnsupportedMediaType()
        return super().parse_body(request)


class FeedAppAPI(NinjaAPI):
    """ninja's API, with two rules of ours: every route names its OpenAPI operation, and
    the plumbing's error answers are in the schema."""

    def get_openapi_schema(
        self, *, path_prefix: str | None = None, path_params: dict[str, Any] | None = None
    ) -> Any:
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        add_error_responses(schema)
        return schema

    def get_openapi_operation_id(self, operation: Operation) -> str:
        # ninja asks only for routes without an `operation_id`. Its default name
        # (module path + function) would become a generated client's function name and
        # change with every refactoring; the contract's names are chosen (README, "The
        # API contract"), so a route without one fails the schema and the tests at once.
        view = f"{operation.view_func.__module__}.{operation.view_func.__name__}"
        raise ConfigError(
            f"{view} has no operation_id: give its route a snake_case `operation_id` "
            "(the name generated clients will call it by)"
        )


api = FeedAppAPI(
    title="FeedApp API",
    version="1.0.0",
    description=(
        "Live polls: accounts, polls, votes and their live counts.\n\n"
        "Any route may answer 503 with `Retry-After` while a service it needs (the "
        "database, the message broker) is unavailable; sending the request again after "
        "that delay is safe. A 503 to a vote means it was not confirmed: it may still be "
        "applied."
    ),
    docs_url="/docs",
    openapi_url="/openapi.json",
    urls_namespace="api",
    parser=JsonOnlyParser(),
    renderer=JsonRenderer(),
)


# ninja types a handler's exception as "the class or an instance": they get instances.
def service_error(request: HttpRequest, exc: object) -> HttpResponse:
    """A service's refusal: its status, `{"detail": message}` and its headers."""
    assert isinstance(exc, ServiceError)
    response = api.create_response(request, {"detail": exc.message}, status=exc.status_code)
    for name, value in exc.headers().items():
        response[name] = value
    if exc.status_code >= 500:
        # Not logged by Django as a server error per request: the outage behind it is
        # logged once where it is noticed (feedapp.outages).
        response._has_been_logged = True  # type: ignore[attr-defined]
    return response


def http_error(request: HttpRequest, exc: object) -> HttpResponse:
    """ninja's own refusals; one of ours that it wrapped (the parser's 415) as itself."""
    assert isinstance(exc, HttpError)
    if isinstance(exc.__cause__, ServiceError):
        return service_error(request, exc.__cause__)
    return api.create_response(request, {"detail": exc.message}, status=exc.status_code)


def validation_error(request: HttpRequest, exc: object) -> HttpResponse:
    assert isinstance(exc, ValidationError)
    # Exactly type, loc and msg: pydantic's `ctx` and `input` may echo what was sent,
    # and a password must never come back.
    issues = [
        {"type": error["type"], "loc": list(error["loc"]), "msg": error["msg"]}
        for error in exc.errors
    ]
    return api.create_response(request, {"detail": issues}, status=422)


def body_too_big(request: HttpRequest, exc: object) -> HttpResponse:
    # A body sent without Content-Length passes the middleware and is caught when read.
    return body_too_large()


api.add_exception_handler(ServiceError, service_error)
api.add_exception_handler(HttpError, http_error)
api.add_exception_handler(ValidationError, validation_error)
api.add_exception_handler(RequestDataTooBig, body_too_big)

api.add_router("", health.router)
api.add_router("/user", accounts_router)
api.add_router("/poll", polls_router)
# Reports are moderation's, on the poll they are about.
api.add_router("/poll", moderation_router)
api.add_router("/vote", votes_router)
# The live stream lives in its own app, under the same prefix as the other vote routes.
api.add_router("/vote", realtime_router)
