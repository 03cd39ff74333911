"""Serving live streams without a thread per stream.

Django's ASGI handler runs each request's synchronous parts (the request_started signal,
the MiddlewareMixin middleware) on a thread of the request's own that lives as long as
the request. For a stream that is as long as the connection: 10,000 streams would be
10,000 idle threads. Streams share one such thread instead; their synchronous parts
are a few short calls at the start and the end of each stream.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import ThreadSensitiveContext

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Send = Callable[[Mapping[str, Any]], Awaitable[None]]
Application = Callable[[Scope, Receive, Send], Awaitable[None]]

STREAM_PATH_PREFIX = "/api/vote/stream/"

_streams_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="streams-sync")


def one_thread_for_streams(application: Application) -> Application:
    """Wrap Django's HTTP application so that stream requests share one sync thread."""

    async def http(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("path", "").startswith(STREAM_PATH_PREFIX):
            async with ThreadSensitiveContext(executor=_streams_thread):
                await application(scope, receive, send)
        else:
            await application(scope, receive, send)

    return http
