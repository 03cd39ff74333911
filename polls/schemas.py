"""The JSON shapes of the poll routes, with the field names of API.md.

Class names are the OpenAPI component names, kept from the first backend (whose
response types were its sqlc row classes, hence `...Row`) so that its generated
frontend client keeps compiling.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from django.conf import settings
from ninja import Field, Schema
from pydantic import AfterValidator, ConfigDict, StringConstraints, field_validator

from db.ids import MAX_ID
from feedapp.schemas import JSON_INTEGER, valid_unicode
from polls.rows import GrantableRole, PollPerms, Role

# Anything outside is refused with 422, never sent to SQL. In bodies `true` or "7" is not
# an id (path and query values are text, and are parsed as integers there).
Id = Annotated[int, Field(ge=1, le=MAX_ID), JSON_INTEGER]

MAX_GRANTS_PER_REQUEST = 100


def storable(text: str) -> str:
    # PostgreSQL text cannot hold NUL: refuse it here rather than fail in the database.
    if "\x00" in text:
        raise ValueError("must not contain NUL characters")
    return valid_unicode(text)


# Trimmed before the length checks, so whitespace-only text is too short. The schema
# declares what that means for the text as sent: no NUL, and something besides
# whitespace (the pattern is not applied here: the checks below are the rule).
TEXT_PATTERN = r"^[^\x00]*[^\s\x00][^\x00]*$"
Question = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=500),
    AfterValidator(storable),
    Field(json_schema_extra={"pattern": TEXT_PATTERN}),
]
OptionText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(storable),
    Field(json_schema_extra={"pattern": TEXT_PATTERN}),
]


class CreatePollPayload(Schema):
    model_config = ConfigDict(extra="forbid")

    question: Question
    options: list[OptionText] = Field(min_length=2, max_length=20)
    expires_at: datetime | None = Field(
        default=None,
        description=(
            "When voting ends: in the future, and at most POLL_EXPIRY_MAX_DAYS (default "
            "3650) days ahead; a time without an offset is UTC. Answered in UTC."
        ),
    )
    poll_perms: PollPerms = "public_vote"

    @field_validator("expires_at")
    @classmethod
    def _in_the_future(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        # A time without offset (e.g. from a datetime-local input) is taken as UTC.
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        try:
            # In UTC from here on; 9999-12-31T23:59:59-01:00 is past what Python (and
            # PostgreSQL) can hold in UTC.
            value = value.astimezone(UTC)
        except OverflowError:
            raise ValueError("is too far in the future") from None
        now = datetime.now(UTC)
        if value <= now:
            raise ValueError("must be in the future")
        horizon = settings.POLL_EXPIRY_MAX_DAYS
        if value > now + timedelta(days=horizon):
            raise ValueError(f"must be at most {horizon} days ahead")
        return value


class GetPollsRow(Schema):
    """A poll in the feed."""

    id: int
    question: str
    expires_at: datetime | None
    creator_name: str
    options: list[str]
    option_ids: list[int]


class GetPollRow(GetPollsRow):
    """One poll, with the caller's current vote (`null`: none, or anonymous)."""

    user_vote: int | None


def _no_duplicates(grants: list[GiveAccessPayload]) -> list[GiveAccessPayload]:
    seen: dict[tuple[str, int], int] = {}
    for index, grant in enumerate(grants):
        pair = (grant.role, grant.user_id)
        if pair in seen:
            raise ValueError(
                f"item {index} repeats item {seen[pair]} ({grant.role}, {grant.user_id})"
            )
        seen[pair] = index
    return grants


class GiveAccessPayload(Schema):
    """One grant asked for: a role on the poll for a user."""

    model_config = ConfigDict(extra="forbid")

    role: GrantableRole
    user_id: Id


class GetActivePollRolesRow(Schema):
    """A grant in force on the poll, to a named user."""

    role: Role
    username: str
    user_id: int


# A roles request: each (role, user_id) at most once (a repeat is a client's mistake,
# reported rather than dropped).
Grants = Annotated[
    list[GiveAccessPayload],
    Field(max_length=MAX_GRANTS_PER_REQUEST, json_schema_extra={"uniqueItems": True}),
    AfterValidator(_no_duplicates),
]
