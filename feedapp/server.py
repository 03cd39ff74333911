"""The HTTP protocol production's uvicorn runs: httptools, with timeouts for slow clients.

uvicorn closes an idle keep-alive connection (`--timeout-keep-alive`) but waits forever
for the headers of a request that has begun, and for its body: a handful of clients
that send a byte now and then ("slow loris") keep their connections, and with them the
server's sockets, as long as they like. This protocol closes a connection whose request
headers have not all arrived HTTP_HEADER_TIMEOUT_SECONDS after the connection was made
(or the next request began), answering 408, and one whose request body has not all
arrived HTTP_BODY_TIMEOUT_SECONDS after its headers. Responses (a live stream may last
hours) and WebSockets are not limited.

It also offers live streams a way to write a body part at once (the `feedapp.write_now`
scope extension, see `write_now` below), which the hub uses for the thousands of writes
one vote on a watched poll makes.

Run it with `uvicorn --http feedapp.server:SlowClientGuard` (stack.processes does).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from django.conf import settings
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

log = logging.getLogger(__name__)

# The ASGI scope extension through which this protocol writes a part of a streaming
# response at once: {"write": callable(bytes) -> bool} (see write_now; feedapp.handler
# uses it).
WRITE_NOW = "feedapp.write_now"

_TIMEOUT_BODY = b'{"detail": "Request headers not received in time"}'
REQUEST_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY)
)


def write_now(cycle: RequestResponseCycle, part: bytes) -> bool:
    """Write a part of a started chunked response body at once; False if it must go
    through the ASGI `send` instead.

    `send` is a coroutine with flow control, so a stream's task has to wake up and await
    it for every event. This writes the same bytes from where the update is fanned out,
    but only when `send` would write at once too: the response started and not finished,
    chunked, the client still there and reading (the transport's buffer is not over its
    high-water mark, so uvicorn has not paused writing). Otherwise the part takes the
    usual path, which waits for the client to drain its buffer.
    """
    if (
        cycle.disconnected
        or cycle.flow.write_paused
        or not cycle.response_started
        or cycle.response_complete
        or not cycle.chunked_encoding
    ):
        return False
    cycle.transport.write(b"%x\r\n%s\r\n" % (len(part), part))
    return True


class SlowClientGuard(HttpToolsProtocol):
    """uvicorn's httptools protocol with deadlines for request headers and bodies, and the
    `feedapp.write_now` extension for streaming responses."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None

    # --- deadlines ------------------------------------------------------------------------

    def _arm(self, seconds: float, on_expiry: Any) -> None:
        self._disarm()
        if seconds > 0:
            self._deadline = self.loop.call_later(seconds, on_expiry)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        log.warning(
            "closed a connection from %s: request headers not received within %.0f s",
            self.client,
            settings.HTTP_HEADER_TIMEOUT_SECONDS,
        )
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(REQUEST_TIMEOUT_RESPONSE)
        self.transport.close()

    def _body_too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        log.warning(
            "closed a connection from %s: request body not received within %.0f s",
            self.client,
            settings.HTTP_BODY_TIMEOUT_SECONDS,
        )
        # The application is running: it sees the client leave (http.disconnect).
        self.transport.close()

    # --- uvicorn's hooks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(settings.HTTP_HEADER_TIMEOUT_SECONDS, self._headers_too_slow)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm(settings.HTTP_HEADER_TIMEOUT_SECONDS, self._headers_too_slow)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.scope is self.scope:  # not an upgrade
            extensions = self.scope.setdefault("extensions", {})
            extensions[WRITE_NOW] = {"write": functools.partial(write_now, cycle)}
        if not (self.parser.should_upgrade() and self._should_upgrade()):
            self._arm(settings.HTTP_BODY_TIMEOUT_SECONDS, self._body_too_slow)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        self._disarm()
        super().on_response_complete()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        super().handle_websocket_upgrade()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
