"""The JSON shapes of the poll routes, with the field names of API.md.

Class names are the OpenAPI component names, kept from the first backend (whose
response types were its sqlc row classes, hence `...Row`) so that its generated
frontend client keeps compiling.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from ninja import Field, Schema
from pydantic import AfterValidator, ConfigDict, StringConstraints, field_validator

from db.ids import MAX_ID
from feedapp.schemas import valid_unicode
from polls.rows import GrantableRole, PollPerms, Role

# Anything outside is refused with 422, never sent to SQL.
Id = Annotated[int, Field(ge=1, le=MAX_ID)]

MAX_GRANTS_PER_REQUEST = 100


def storable(text: str) -> str:
    # PostgreSQL text cannot hold NUL: refuse it here rather than fail in the database.
    if "\x00" in text:
        raise ValueError("must not contain NUL characters")
    return valid_unicode(text)


# Trimmed before the length checks, so whitespace-only text is too short.
Question = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=500),
    AfterValidator(storable),
]
OptionText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(storable),
]


class CreatePollPayload(Schema):
    model_config = ConfigDict(extra="forbid")

    question: Question
    options: list[OptionText] = Field(min_length=2, max_length=20)
    expires_at: datetime | None = None
    poll_perms: PollPerms = "public_vote"

    @field_validator("expires_at")
    @classmethod
    def _in_the_future(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        # A time without offset (e.g. from a datetime-local input) is taken as UTC.
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        if value <= datetime.now(UTC):
            raise ValueError("must be in the future")
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
