"""The WebSocket route `/ws/poll/{poll_id}`: the stream's events as JSON text frames.

Same view right, limits and hub as the SSE stream. Frames:
`{"event": "vote_update", "id": <version>, "data": [{"vote_option_id", "vote_count"}, ...]}`,
`{"event": "poll_deleted"}` and `{"event": "access_revoked"}` (the last two just before
their close codes, as on the SSE stream). The connection is accepted, then closed with a
code when refused: 4404 not viewable, 4429 past a stream limit, 1013 shutting down; after
`poll_deleted` with 1000, on process shutdown with 1001, and with 4403 once the viewer
may no longer watch (banned, logged out, token expired, no longer allowed to view the
poll; see realtime.access). A foreign Origin is refused
at the handshake (403), like the API's state-changing requests.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import aclosing
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer
from channels.routing import URLRouter
from channels.security.websocket import OriginValidator, WebsocketDenier
from django.conf import settings
from django.http.cookie import parse_cookie
from django.urls import path, re_path

from accounts.addresses import address_from
from accounts.auth import COOKIE_NAME, session_from_token
from feedapp.errors import NotFound, ServiceError, TooManyRequests, Unavailable
from feedapp.requestlog import HEADER, accepted_request_id, request_id
from realtime.hub import Signal, Update
from realtime.streams import Watch, open_watch

log = logging.getLogger(__name__)
# The HTTP request lines' logger: a WebSocket's lines sit beside them.
request_log = logging.getLogger("feedapp.request")
ROUTE = "/ws/poll/<poll_id>"

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_ACCESS_REVOKED = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_TOO_MANY = 4429

# The project's errors as close codes (the SSE route answers their HTTP status instead).
CLOSE_CODES: dict[type[ServiceError], int] = {
    NotFound: CLOSE_NOT_FOUND,
    TooManyRequests: CLOSE_TOO_MANY,
    Unavailable: CLOSE_TRY_AGAIN_LATER,
}

POLL_DELETED_FRAME = '{"event":"poll_deleted"}'
ACCESS_REVOKED_FRAME = '{"event":"access_revoked"}'


def vote_update_frame(update: Update) -> str:
    """The `vote_update` frame (`update.data` is already JSON)."""
    return f'{{"event":"vote_update","id":{update.version},"data":{update.data}}}'


def close_code(error: ServiceError) -> int:
    """The close code of a refusal: its class's, or its nearest base class's."""
    for cls in type(error).__mro__:
        if cls in CLOSE_CODES:
            return CLOSE_CODES[cls]
    return CLOSE_POLICY_VIOLATION


def _headers(scope: dict[str, Any], name: bytes) -> list[str]:
    """Every value of header `name`, in order (header names in ASGI scopes are lowercase)."""
    return [
        bytes(value).decode("latin-1") for key, value in scope.get("headers", []) if key == name
    ]


def scope_token(scope: dict[str, Any]) -> str | None:
    """The session token in the handshake's cookie, if any."""
    # Several Cookie headers (HTTP/2 may split them) join with "; ".
    return parse_cookie("; ".join(_headers(scope, b"cookie"))).get(COOKIE_NAME)


def scope_address(scope: dict[str, Any]) -> str:
    """The client address of a WebSocket, as `accounts.addresses.client_address` reads it."""
    client = scope.get("client") or ("", 0)
    return address_from(str(client[0]), _headers(scope, b"x-forwarded-for"))


class PollUpdatesConsumer(AsyncWebsocketConsumer):
    """One poll's live counts over a WebSocket."""

    forwarder: asyncio.Task[None] | None = None  # None until a watch was opened
    opened: float = 0.0
    address: str = ""

    async def connect(self) -> None:
        poll_id = int(self.scope["url_route"]["kwargs"]["poll_id"])
        self.opened = time.perf_counter()
        self.address = scope_address(self.scope)
        # A request id as for HTTP requests, on every line of this connection: its handlers
        # run in one task, and the forwarder's copies the context.
        offered = _headers(self.scope, HEADER.lower().encode())
        request_id.set(accepted_request_id(offered[0] if offered else ""))
        # Accepted first: a refusal before accepting reaches the browser as a bare 403,
        # without the close code that says why.
        await self.accept(headers=[(HEADER.lower().encode(), request_id.get().encode())])
        session = await session_from_token(scope_token(self.scope))
        try:
            watch = await open_watch(session, self.address, poll_id)
        except ServiceError as error:
            code = close_code(error)
            self._log("refused", code)
            await self.close(code=code)
            return
        self.forwarder = asyncio.create_task(self.forward(watch))

    def _log(self, outcome: str, code: int) -> None:
        seconds = time.perf_counter() - self.opened
        client = self.address
        path = self.scope.get("path", "")
        request_log.info(
            "WS %s %s code=%d %.1fs path=%r client=%s",
            ROUTE,
            outcome,
            code,
            seconds,
            path,
            client,
            extra={
                "ws": {
                    "route": ROUTE,
                    "outcome": outcome,
                    "code": code,
                    "duration_s": round(seconds, 3),
                    "path": path,
                    "client": client,
                }
            },
        )

    async def forward(self, watch: Watch) -> None:
        """Send the watch's items until the poll is deleted or the process shuts down."""
        try:
            async with aclosing(watch.items(settings.SSE_KEEPALIVE_SECONDS)) as items:
                async for item in items:
                    # WebSocket servers ping idle connections themselves: no keepalive frames.
                    if isinstance(item, Update):
                        await self.send(text_data=vote_update_frame(item))
                    elif item is Signal.POLL_DELETED:
                        await self.send(text_data=POLL_DELETED_FRAME)
                        await self.close(code=CLOSE_NORMAL)
                        return
                    elif item is Signal.ACCESS_REVOKED:
                        # Said in a frame too: a client library may hide the close code.
                        await self.send(text_data=ACCESS_REVOKED_FRAME)
                        await self.close(code=CLOSE_ACCESS_REVOKED)
                        return
            await self.close(code=CLOSE_GOING_AWAY)
        finally:
            watch.close()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Clients have nothing to say on this route; what they send is ignored."""

    async def disconnect(self, code: int) -> None:
        if self.forwarder is not None:  # a refused connection was logged when refused
            self._log("closed", code)
        task = self.forwarder
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


class OriginGuard(OriginValidator):
    """Handshakes from browsers on a foreign origin get 403; without Origin they pass.

    The rule of the API's state-changing requests: browsers always send Origin with a
    WebSocket handshake, and other clients carry no victim's cookie.
    """

    def __init__(self, application: Any) -> None:
        self.application = application

    @property
    def allowed_origins(self) -> list[str]:
        return [origin.rstrip("/") for origin in settings.FEEDAPP_ALLOWED_ORIGINS]

    def valid_origin(self, parsed_origin: Any) -> bool:
        return parsed_origin is None or bool(super().valid_origin(parsed_origin))


def websocket_application() -> Any:
    """The ASGI application of the `websocket` protocol."""
    return OriginGuard(
        URLRouter(
            [
                path("ws/poll/<int:poll_id>", PollUpdatesConsumer.as_asgi()),
                re_path(r"", WebsocketDenier.as_asgi()),
            ]
        )
    )
