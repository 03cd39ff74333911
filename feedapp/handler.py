"""Django's ASGI handler without a thread per API request."""

from __future__ import annotations

from typing import Any

from django.core.handlers.asgi import ASGIHandler, get_script_prefix

from feedapp.middleware import API_PREFIX


class FeedAppASGIHandler(ASGIHandler):
    """Skips the per-request ThreadSensitiveContext on the JSON API's paths.

    Django enters a ThreadSensitiveContext for every request and then runs
    `response.close()` (and sync signal receivers) through sync_to_async: inside that
    context each request creates, then joins, a thread of its own, which profiling
    showed as a quarter of a vote submission's cost. The API's views and middleware are
    all async, so its few sync hooks can share asgiref's one thread instead; for a live
    stream the per-request thread would otherwise live as long as the connection (10,000
    streams, 10,000 idle threads). Other paths (the admin's sync views) keep Django's
    isolation.
    """

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and path_info(scope).startswith(API_PREFIX):
            await self.handle(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def path_info(scope: dict[str, Any]) -> str:
    """The path below the script prefix, as Django's request.path_info will have it."""
    path: str = scope["path"]
    prefix = get_script_prefix(scope)
    return path.removeprefix(prefix) if prefix else path
