"""The poll routes under /api/poll: create, feed, get, delete, and roles."""

from __future__ import annotations

from typing import Annotated

from django.http import HttpRequest
from ninja import Body, Path, Query, Router, Status

from accounts.auth import optional_user, require_user
from db.ids import MAX_ID
from polls import services
from polls.errors import PollNotFound
from polls.rows import PollRow, PollSummaryRow, UserGrantRow
from polls.schemas import (
    CreatePoll,
    Grants,
    Message,
    Poll,
    PollSummary,
    UserRole,
    ValidationErrors,
)

router = Router(tags=["polls"])

PollId = Annotated[int, Path(ge=1, le=MAX_ID)]
RolesBody = Annotated[Grants, Body()]


# Routes for signed-in users pass require_user as ninja `auth`: it runs before the
# body is validated (as in the original backend), so anonymous callers always get 401.
@router.post(
    "/create",
    response={201: Poll, 401: Message, 422: ValidationErrors},
    summary="Create a poll",
    auth=require_user,
)
async def create_poll(request: HttpRequest, payload: CreatePoll) -> Status[PollRow]:
    """Create a poll; the caller becomes its creator."""
    user = await require_user(request)
    poll = await services.do_create_poll(
        user, payload.question, payload.options, payload.poll_perms, payload.expires_at
    )
    return Status(201, poll)


@router.get("/all", response={200: list[PollSummary], 422: ValidationErrors}, summary="The feed")
async def feed(
    request: HttpRequest,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> list[PollSummaryRow]:
    """Polls the caller may view, newest first; pass the last id seen as `before` for more."""
    return await services.get_feed_page(await optional_user(request), limit, before)


@router.get(
    "/{poll_id}", response={200: Poll, 404: Message, 422: ValidationErrors}, summary="Get a poll"
)
async def get_poll(request: HttpRequest, poll_id: PollId) -> PollRow:
    """The poll with the caller's current vote; 404 also when the caller may not view it."""
    poll = await services.get_poll(poll_id, await optional_user(request))
    if poll is None:
        raise PollNotFound()
    return poll


@router.delete(
    "/{poll_id}",
    response={204: None, 401: Message, 403: Message, 404: Message, 422: ValidationErrors},
    summary="Delete a poll",
    auth=require_user,
)
async def delete_poll(request: HttpRequest, poll_id: PollId) -> Status[None]:
    """Delete a poll (its creator or a moderator)."""
    await services.do_delete_poll(poll_id, await require_user(request))
    return Status(204, None)


@router.get(
    "/{poll_id}/roles",
    response={200: list[UserRole], 401: Message, 403: Message, 404: Message, 422: ValidationErrors},
    summary="List a poll's grants",
    auth=require_user,
)
async def list_roles(request: HttpRequest, poll_id: PollId) -> list[UserGrantRow]:
    """Active grants of this poll to named users (needs poll:assign_role)."""
    return await services.list_user_grants(poll_id, await require_user(request))


@router.post(
    "/{poll_id}/roles",
    response={200: list[int], 401: Message, 403: Message, 404: Message, 422: ValidationErrors},
    summary="Grant roles on a poll",
    auth=require_user,
)
async def grant_roles(request: HttpRequest, poll_id: PollId, grants: RolesBody) -> list[int]:
    """Grant roles to users; answers the user ids that could not be granted."""
    return await services.do_grant_roles(
        poll_id, await require_user(request), [(g.role, g.user_id) for g in grants]
    )
