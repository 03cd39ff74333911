"""Vote routes: submit a vote, read a poll's counts."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Annotated, Any, Literal

from django.http import HttpRequest, HttpResponse
from ninja import Path, Router, Schema
from pydantic import ConfigDict, Field

from accounts.auth import optional_user, require_user
from accounts.rows import UserRow
from accounts.security import SESSION_OPTIONAL, SessionCookie
from db.ids import MAX_ID
from feedapp.errors import Unavailable
from feedapp.rendering import dumps, raw_json_answer
from feedapp.schemas import JSON_INTEGER, RETRY_AFTER_HEADER, Detail, HTTPValidationError
from votes.deadline import DeadlinePassed, by_deadline, vote_deadline
from votes.services import VOTE_NOT_CONFIRMED, do_submit_vote, get_visible_counts_json

router = Router(tags=["votes"])

# `true` or "7" in a body is not an id.
Id = Annotated[int, Field(gt=0, le=MAX_ID), JSON_INTEGER]


# Class names are the OpenAPI component names; `VotePayload` and `GetVoteCountsRow` are the
# first backend's, which its generated frontend client imports.
class VotePayload(Schema):
    model_config = ConfigDict(extra="forbid")

    poll_id: Id
    vote_option_id: Id


class Accepted(Schema):
    status: Literal["accepted"]


_ACCEPTED = dumps({"status": "accepted"})


async def _by_vote_deadline(request: HttpRequest, check: Coroutine[Any, Any, UserRow]) -> UserRow:
    try:
        return await by_deadline(check, vote_deadline(request))
    except DeadlinePassed:
        raise Unavailable(VOTE_NOT_CONFIRMED) from None


# ninja runs the session check before the view: it counts against the vote's deadline,
# and is bounded by it, like every later step (a session not in the cache is read from
# PostgreSQL, which may first mean waiting for a connection).
VOTE_SESSION_REQUIRED = SessionCookie(run=_by_vote_deadline)


class GetVoteCountsRow(Schema):
    """The votes one option has."""

    vote_option_id: int
    vote_count: int


@router.post(
    "/submit",
    response={
        201: Accepted,
        401: Detail,
        403: Detail,
        404: Detail,
        409: Detail,
        422: HTTPValidationError,
        429: Detail,
        503: Detail,
    },
    operation_id="submit_vote",
    summary="Submit or change a vote",
    # Before the body is validated: anonymous callers always get 401.
    auth=VOTE_SESSION_REQUIRED,
    openapi_extra={
        # Keyed by the number, as ninja keys its own responses: merged into its 503.
        "responses": {
            503: {
                "description": (
                    "Not confirmed: the broker did not acknowledge the vote in time or is "
                    "unreachable, or the database is down. The vote may still be applied; "
                    "sending it again is safe (one vote per user and poll)."
                ),
                "headers": {"Retry-After": RETRY_AFTER_HEADER},
            }
        }
    },
)
async def submit_vote(request: HttpRequest, body: VotePayload) -> HttpResponse:
    """201 once all in-sync replicas of the broker have the vote; the counts change when the
    consumer applies it. 503 means "not confirmed": the vote may still be applied, and
    sending it again is safe, since a user has one vote per poll."""
    user = await require_user(request)  # checked by the route's auth, by the deadline
    await do_submit_vote(user, body.poll_id, body.vote_option_id, vote_deadline(request))
    return raw_json_answer(_ACCEPTED, status=201)


@router.get(
    "/{poll_id}",
    response={200: list[GetVoteCountsRow], 404: Detail, 422: HTTPValidationError},
    operation_id="get_votes_for_poll",
    summary="A poll's counts",
    openapi_extra=SESSION_OPTIONAL,
)
async def poll_counts(
    request: HttpRequest, poll_id: Annotated[int, Path(gt=0, le=MAX_ID)]
) -> HttpResponse:
    """Counts per option in presentation order, zeros included."""
    return raw_json_answer(await get_visible_counts_json(await optional_user(request), poll_id))
