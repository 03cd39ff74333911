"""The report route: POST /api/poll/{poll_id}/report."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Router, Status

from accounts.auth import require_user
from accounts.security import SESSION_REQUIRED
from feedapp.schemas import Detail, HTTPValidationError
from moderation.schemas import ReportPollPayload, ReportReceived
from moderation.services import do_report_poll
from polls.views import PollId

router = Router(tags=["moderation"])


@router.post(
    "/{poll_id}/report",
    response={
        202: ReportReceived,
        401: Detail,
        404: Detail,
        409: Detail,
        422: HTTPValidationError,
        429: Detail,
    },
    summary="Report a poll to the moderators",
    operation_id="report_poll",
    auth=SESSION_REQUIRED,
)
async def report_poll(
    request: HttpRequest, poll_id: PollId, payload: ReportPollPayload
) -> Status[ReportReceived]:
    """Flag a poll you can see for review; the poll's creator never learns who reported it."""
    await do_report_poll(poll_id, await require_user(request), payload.reason, payload.note)
    return Status(202, ReportReceived(status="received"))
