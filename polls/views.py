"""The poll routes under /api/poll: create, feed, get, delete, and roles."""

from __future__ import annotations

from typing import Annotated

from django.http import HttpRequest, HttpResponse
from ninja import Body, Path, Query, Router, Status

from accounts.auth import optional_user, require_user
from accounts.security import SESSION_OPTIONAL, SESSION_REQUIRED
from db.ids import MAX_ID
from feedapp.rendering import json_answer
from feedapp.schemas import Detail, HTTPValidationError
from polls import services
from polls.errors import PollNotFound
from polls.rows import PollRow, UserGrantRow
from polls.schemas import (
    CreatePollPayload,
    GetActivePollRolesRow,
    GetPollRow,
    GetPollsRow,
    Grants,
)

router = Router(tags=["polls"])

PollId = Annotated[int, Path(ge=1, le=MAX_ID)]
RolesBody = Annotated[Grants, Body()]


# Routes for signed-in users pass SESSION_REQUIRED as ninja `auth`: it runs before the
# body is validated (as in the original backend), so anonymous callers always get 401.
# Every route names its OpenAPI operation: the first backend's route names, which its
# generated frontend client turns into the function names it imports.
@router.post(
    "/create",
    response={201: GetPollRow, 401: Detail, 422: HTTPValidationError},
    operation_id="create_poll",
    summary="Create a poll",
    auth=SESSION_REQUIRED,
)
async def create_poll(request: HttpRequest, payload: CreatePollPayload) -> Status[PollRow]:
    """Create a poll; the caller becomes its creator."""
    user = await require_user(request)
    poll = await services.do_create_poll(
        user, payload.question, payload.options, payload.poll_perms, payload.expires_at
    )
    return Status(201, poll)


@router.get(
    "/all",
    response={200: list[GetPollsRow], 422: HTTPValidationError},
    operation_id="get_all_polls",
    summary="The feed",
    openapi_extra=SESSION_OPTIONAL,
)
async def feed(
    request: HttpRequest,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> HttpResponse:
    """Polls the caller may view, newest first; pass the last id seen as `before` for more."""
    return json_answer(await services.get_feed_page(await optional_user(request), limit, before))


@router.get(
    "/{poll_id}",
    response={200: GetPollRow, 404: Detail, 422: HTTPValidationError},
    operation_id="get_poll_by_id",
    summary="Get a poll",
    openapi_extra=SESSION_OPTIONAL,
)
async def get_poll(request: HttpRequest, poll_id: PollId) -> HttpResponse:
    """The poll with the caller's current vote; 404 also when the caller may not view it."""
    poll = await services.get_poll(poll_id, await optional_user(request))
    if poll is None:
        raise PollNotFound()
    return json_answer(poll)


@router.delete(
    "/{poll_id}",
    response={204: None, 401: Detail, 403: Detail, 404: Detail, 422: HTTPValidationError},
    operation_id="delete_poll_by_id",
    summary="Delete a poll",
    auth=SESSION_REQUIRED,
)
async def delete_poll(request: HttpRequest, poll_id: PollId) -> Status[None]:
    """Delete a poll (its creator or a moderator)."""
    await services.do_delete_poll(poll_id, await require_user(request))
    return Status(204, None)


@router.get(
    "/{poll_id}/roles",
    response={
        200: list[GetActivePollRolesRow],
        401: Detail,
        403: Detail,
        404: Detail,
        422: HTTPValidationError,
    },
    operation_id="get_poll_roles",
    summary="List a poll's grants",
    auth=SESSION_REQUIRED,
)
async def list_roles(request: HttpRequest, poll_id: PollId) -> list[UserGrantRow]:
    """Active grants of this poll to named users (needs poll:assign_role)."""
    return await services.list_user_grants(poll_id, await require_user(request))


@router.post(
    "/{poll_id}/roles",
    response={200: list[int], 401: Detail, 403: Detail, 404: Detail, 422: HTTPValidationError},
    operation_id="assign_poll_roles",
    summary="Grant roles on a poll",
    auth=SESSION_REQUIRED,
)
async def grant_roles(request: HttpRequest, poll_id: PollId, grants: RolesBody) -> list[int]:
    """Grant roles to users; answers the user ids that could not be granted."""
    return await services.do_grant_roles(
        poll_id, await require_user(request), [(g.role, g.user_id) for g in grants]
    )
