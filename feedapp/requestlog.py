"""One log line per request, a request id on every log line, and the HTTP metrics.

`request_log_middleware` (the outermost middleware) takes the request id from
`X-Request-ID` when it is a plain token (letters, digits, `.`, `_`, `-`; at most 64),
else makes one; returns it in the response's `X-Request-ID`; and keeps it in a context
variable for the whole request, so `RequestIdFilter` puts it on every log line the
request causes, in sync code run for it too (asgiref copies the context). When the
response starts it logs one line (method, route template, status, duration, path,
client) and counts the request in the metrics.

WebSocket connections get their id the same way (realtime.websocket: in the handshake's
answer, and on a line when the connection is refused or ends).

LOG_FORMAT=json makes every log line one JSON object (`JsonFormatter`); plain lines
escape user input through %r.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponseBase
from django.utils.decorators import sync_and_async_middleware

from accounts.addresses import client_address
from feedapp.metrics import METHODS, UNMATCHED, observe_request

log = logging.getLogger("feedapp.request")

NO_REQUEST = "-"
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default=NO_REQUEST)
_ACCEPTED_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
HEADER = "X-Request-ID"


def accepted_request_id(offered: str) -> str:
    """The id a client offered, if it is a plain token; else a new one."""
    return offered if _ACCEPTED_ID.fullmatch(offered) else uuid.uuid4().hex


def _request_id(request: HttpRequest) -> str:
    return accepted_request_id(request.headers.get(HEADER, ""))


def _route(request: HttpRequest) -> str:
    """The route template that matched (`api/poll/<int:poll_id>`), never the raw path."""
    match = getattr(request, "resolver_match", None)
    return f"/{match.route}" if match is not None and match.route else UNMATCHED


def _finish(request: HttpRequest, response: HttpResponseBase, started: float) -> None:
    seconds = time.perf_counter() - started
    method = request.method if request.method in METHODS else "other"
    route = _route(request)
    client = client_address(request)
    observe_request(method, route, response.status_code, seconds)
    response[HEADER] = request_id.get()
    log.info(
        "%s %s %d %.1fms path=%r client=%s",
        method,
        route,
        response.status_code,
        seconds * 1000,
        request.path,
        client,
        extra={
            "http": {
                "method": method,
                "route": route,
                "status": response.status_code,
                "duration_ms": round(seconds * 1000, 2),
                "path": request.path,
                "client": client,
            }
        },
    )


@sync_and_async_middleware
def request_log_middleware(
    get_response: Callable[[HttpRequest], Any],
) -> Callable[[HttpRequest], Any]:
    """Request id, one log line and the HTTP metrics for every request."""
    if iscoroutinefunction(get_response):

        async def async_middleware(request: HttpRequest) -> HttpResponseBase:
            started = time.perf_counter()
            token = request_id.set(_request_id(request))
            try:
                response: HttpResponseBase = await get_response(request)
                _finish(request, response, started)
                return response
            finally:
                request_id.reset(token)

        return async_middleware

    def sync_middleware(request: HttpRequest) -> HttpResponseBase:
        started = time.perf_counter()
        token = request_id.set(_request_id(request))
        try:
            response: HttpResponseBase = get_response(request)
            _finish(request, response, started)
            return response
        finally:
            request_id.reset(token)

    return sync_middleware


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record: the request's, or "-" outside any request."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, and the
    request's (or WebSocket's) fields on its line. json.dumps escapes whatever the message holds."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", NO_REQUEST),
        }
        for fields in ("http", "ws"):  # a request's line, a WebSocket's line
            value = getattr(record, fields, None)
            if value is not None:
                line[fields] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)
