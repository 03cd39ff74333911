"""The JSON shapes of the report route, as API.md names them."""

from __future__ import annotations

from typing import Annotated, Literal

from ninja import Schema
from pydantic import AfterValidator, ConfigDict, StringConstraints

from moderation.rows import Reason
from polls.schemas import storable

NOTE_MAX_LENGTH = 500


def _empty_as_none(text: str | None) -> str | None:
    return text or None


# Trimmed first: a note of only whitespace is no note.
Note = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=NOTE_MAX_LENGTH),
    AfterValidator(storable),
]


# Class names are the OpenAPI component names, in the first backend's style
# (CreatePollPayload, VotePayload).
class ReportPollPayload(Schema):
    model_config = ConfigDict(extra="forbid")

    reason: Reason
    note: Annotated[Note | None, AfterValidator(_empty_as_none)] = None


class ReportReceived(Schema):
    status: Literal["received"]
