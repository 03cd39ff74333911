"""The live counts stream: `GET /api/vote/stream/{poll_id}` (Server-Sent Events)."""

from __future__ import annotations

from typing import Annotated

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from ninja import Path, Router

from accounts.addresses import client_address
from accounts.auth import optional_session
from accounts.security import SESSION_OPTIONAL
from db.ids import MAX_ID
from feedapp.handler import ByteStreamResponse, WriteNow
from feedapp.schemas import Detail, HTTPValidationError
from realtime.sse import CONTENT_TYPE, event_stream
from realtime.streams import open_watch

router = Router(tags=["votes"])

# Each event of the stream (OpenAPI before 3.2 describes a text/event-stream by the
# schema of one event: its `event`, `id` and `data` fields).
_EVENT_SCHEMA = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "enum": ["vote_update", "poll_deleted", "access_revoked"]},
        "id": {
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": "vote_update: the counts version (only grows)",
        },
        "data": {
            "type": "string",
            "description": (
                "vote_update: the counts as JSON, as in GET /api/vote/{poll_id}; otherwise `{}`"
            ),
        },
    },
    "required": ["event", "data"],
}
_EVENTS_DOC = {
    "description": (
        "`vote_update` events (`id:` the counts version, `data:` the counts as in "
        "GET /api/vote/{poll_id}), `: keepalive` comments, and `poll_deleted` or "
        "`access_revoked` (the caller may no longer view the poll, or their session "
        "ended) before the end."
    ),
    "content": {CONTENT_TYPE: {"schema": _EVENT_SCHEMA}},
}


@router.get(
    "/stream/{poll_id}",
    response={404: Detail, 422: HTTPValidationError, 429: Detail, 503: Detail},
    operation_id="stream_vote_updates",
    summary="Live counts (Server-Sent Events)",
    openapi_extra={"responses": {"200": _EVENTS_DOC}, **SESSION_OPTIONAL},
)
async def stream_counts(
    request: HttpRequest, poll_id: Annotated[int, Path(gt=0, le=MAX_ID)]
) -> HttpResponseBase:
    """The counts at once, then on every change; 404 when not viewable, 429 past a limit."""
    watch = await open_watch(await optional_session(request), client_address(request), poll_id)
    # Joining the hub happens in the body, whose `finally` is sure to run once it started;
    # a body that never starts drops the slot with it, which releases it (see limits.Slot).
    write_now = WriteNow()  # connected to the server by the handler, where it can be
    body = event_stream(
        watch.hub,
        watch.viewer,
        watch.counts,
        settings.SSE_KEEPALIVE_SECONDS,
        watch.close,
        write_now,
    )
    response = ByteStreamResponse(body, write_now, content_type=CONTENT_TYPE)
    response["Cache-Control"] = "no-cache"
    # Tells nginx-style proxies not to buffer; nothing on this route compresses.
    response["X-Accel-Buffering"] = "no"
    return response
