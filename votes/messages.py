"""The vote event: what the web process produces to Kafka and the consumer applies."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import NamedTuple

import orjson

from db.ids import MAX_ID


class PoisonEvent(ValueError):
    """A record that can never be applied (bad JSON, wrong shape); skipped and counted."""


class VoteEvent(NamedTuple):
    """One vote as submitted. A named tuple: the consumer decodes tens of thousands a
    second, and a tuple is made at a fraction of a frozen dataclass's cost."""

    event_id: uuid.UUID
    user_id: int
    poll_id: int
    vote_option_id: int
    submitted_at: datetime

    @classmethod
    def new(cls, user_id: int, poll_id: int, vote_option_id: int) -> VoteEvent:
        return cls(uuid.uuid4(), user_id, poll_id, vote_option_id, datetime.now(UTC))

    def key(self) -> bytes:
        """The partition key: all votes of one poll go to one partition, in order."""
        return str(self.poll_id).encode()

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "event_id": str(self.event_id),
                "user_id": self.user_id,
                "poll_id": self.poll_id,
                "vote_option_id": self.vote_option_id,
                "submitted_at": self.submitted_at.isoformat(),
            }
        )

    @classmethod
    def decode(cls, raw: bytes | None) -> VoteEvent:
        """Parse a record's value; PoisonEvent when it is not a valid vote event."""
        if raw is None:
            raise PoisonEvent("empty record")
        try:
            data = orjson.loads(raw)  # its JSONDecodeError is a ValueError
            event = cls(
                event_id=uuid.UUID(data["event_id"]),
                user_id=_positive_id(data["user_id"]),
                poll_id=_positive_id(data["poll_id"]),
                vote_option_id=_positive_id(data["vote_option_id"]),
                submitted_at=datetime.fromisoformat(data["submitted_at"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise PoisonEvent(f"not a vote event: {exc.__class__.__name__}") from None
        if event.submitted_at.tzinfo is None:
            raise PoisonEvent("submitted_at has no time zone")
        return event


def _positive_id(value: object) -> int:
    if type(value) is not int or not 0 < value <= MAX_ID:
        raise ValueError("not a positive 64-bit id")
    return value
