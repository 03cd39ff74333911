"""Django's ASGI handler, with a path for the JSON API that never leaves the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any

from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.http import HttpRequest, HttpResponseBase, StreamingHttpResponse
from django.urls import set_script_prefix, set_urlconf
from django.utils.log import log_response

from feedapp.middleware import API_PREFIX
from feedapp.server import WRITE_NOW


class FeedAppASGIHandler(ASGIHandler):
    """Serves the API's paths without any thread; other paths (the admin) as Django does.

    For every request Django enters a ThreadSensitiveContext (each request then creates
    and joins a thread of its own), sends `request_started` and `request_finished`
    through sync_to_async (their receivers are synchronous), logs error answers on a
    worker thread, and runs a second task that listens for the client leaving. Profiling
    showed the thread hops as a quarter of a vote submission's CPU, and for a live stream
    the per-request thread would live as long as the connection (10,000 streams, 10,000
    idle threads).

    The API's views and middleware are all async, so its requests are handled here on the
    event loop, with the same steps in the same order: the same signals and receivers
    (Django's only ones close its own database connections and caches, which the API
    never opens on this thread, so they return at once), the same error logging, and
    `response.close()`. Only a streaming response (a live stream) listens for the
    client's disconnect, which is what ends it; a short answer is simply finished.
    """

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and path_info(scope).startswith(API_PREFIX):
            await self.handle_api(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def handle_api(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """One API request, start to end, on the event loop."""
        received = time.monotonic()
        body = await read_body(receive, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
        if body is None:
            return  # the client left before its request was complete
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, refused = self.create_request(scope, io.BytesIO(body))
        if request is not None:
            request.feedapp_received_at = received  # type: ignore[attr-defined]
        response = refused if request is None else await self.get_api_response(request)
        assert response is not None  # create_request gives a request or an answer
        try:
            if response.streaming:
                await self.send_streaming(response, receive, send, scope)
            else:
                await self.send_response(response, send)
        finally:
            response.close()  # sends request_finished

    async def get_api_response(self, request: HttpRequest) -> HttpResponseBase:
        """Django's get_response_async, logging an error answer in place."""
        set_urlconf(settings.ROOT_URLCONF)
        response: HttpResponseBase = await self._middleware_chain(request)  # type: ignore[attr-defined]
        response._resource_closers.append(request.close)  # type: ignore[attr-defined]
        response._handler_class = self.__class__  # type: ignore[attr-defined]
        if response.status_code >= 400:
            log_response(
                "%s: %s",
                response.reason_phrase,
                request.path,
                response=response,  # type: ignore[arg-type]  # any response will do
                request=request,
            )
        return response

    async def send_streaming(
        self, response: HttpResponseBase, receive: Any, send: Any, scope: dict[str, Any]
    ) -> None:
        """Send a streaming body until it ends or the client leaves (which cancels it)."""
        if isinstance(response, ByteStreamResponse):
            sending = asyncio.ensure_future(send_byte_stream(response, send, scope))
        else:
            sending = asyncio.ensure_future(self.send_response(response, send))
        leaving = asyncio.ensure_future(self.listen_for_disconnect(receive))
        try:
            await asyncio.wait((sending, leaving), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (leaving, sending):
                if not task.done():
                    task.cancel()
                with contextlib.suppress(asyncio.CancelledError, RequestAborted):
                    await task


class ByteStreamResponse(StreamingHttpResponse):
    """A streaming response whose parts are bytes ready to send (a live stream's events).

    The API's handler sends them as they come, one ASGI message each: Django's own path
    wraps every part in three more iterators and a chunking loop, which for 10,000
    streams of one busy poll cost more than the hub's whole fan-out. Elsewhere (Django's
    handler, the test client) it is an ordinary StreamingHttpResponse.
    """

    def __init__(
        self,
        parts: AsyncGenerator[bytes, None],
        write_now: WriteNow | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(parts, **kwargs)
        self.parts = parts
        self.write_now = write_now


class WriteNow:
    """Writes a part of a ByteStreamResponse's body at once, when the server offers that
    (the WRITE_NOW extension) and the part can go out without waiting; False otherwise,
    and always before the response started or after it ended.

    The body's generator gets this object before the response exists (a live stream
    writes its updates through it, see realtime.sse); the handler connects it to the
    server while the body is being sent.
    """

    __slots__ = ("writer",)

    def __init__(self) -> None:
        self.writer: Callable[[bytes], bool] | None = None

    def __call__(self, part: bytes) -> bool:
        writer = self.writer
        return writer is not None and writer(part)


async def send_byte_stream(response: ByteStreamResponse, send: Any, scope: dict[str, Any]) -> None:
    """Django's send_response for a ByteStreamResponse, without its per-part wrappers."""
    headers = [
        (
            name.encode("ascii") if isinstance(name, str) else name,
            value.encode("latin1") if isinstance(value, str) else value,
        )
        for name, value in response.items()
    ]
    headers += [
        (b"Set-Cookie", cookie.output(header="").encode("ascii").strip())
        for cookie in response.cookies.values()
    ]
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    write_now = response.write_now
    if write_now is not None:
        write_now.writer = scope.get("extensions", {}).get(WRITE_NOW, {}).get("write")
    try:
        async with contextlib.aclosing(response.parts) as parts:
            async for part in parts:
                await send({"type": "http.response.body", "body": part, "more_body": True})
    finally:
        if write_now is not None:
            write_now.writer = None
    await send({"type": "http.response.body"})


async def read_body(receive: Any, limit: int | None) -> bytes | None:
    """The request's body, or None when the client left first.

    At most `limit` + 1 bytes are kept (the rest is read and dropped): enough for Django
    to see that the body is too large (RequestDataTooBig, answered 413) without holding
    a body of any size in memory.
    """
    chunks: list[bytes] = []
    kept = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        if chunk and (limit is None or kept <= limit):
            chunks.append(chunk)
            kept += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def received_at(request: HttpRequest) -> float:
    """When the server began handling `request` (time.monotonic()), before its body and
    every middleware; for a request that did not come through `handle_api` (Django's test
    client, the admin), the first time this is asked."""
    began: float | None = getattr(request, "feedapp_received_at", None)
    if began is None:
        began = request.feedapp_received_at = time.monotonic()  # type: ignore[attr-defined]
    return began


def path_info(scope: dict[str, Any]) -> str:
    """The path below the script prefix, as Django's request.path_info will have it."""
    path: str = scope["path"]
    prefix = get_script_prefix(scope)
    return path.removeprefix(prefix) if prefix else path
