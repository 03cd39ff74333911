"""Vote events and batch reduction (pure logic)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from votes.messages import PoisonEvent, VoteEvent
from votes.reduce import last_vote_per_user


def test_round_trip() -> None:
    event = VoteEvent.new(1, 2, 3)
    assert VoteEvent.decode(event.encode()) == event
    assert event.key() == b"2"


GOOD = {
    "event_id": str(uuid.uuid4()),
    "user_id": 1,
    "poll_id": 2,
    "vote_option_id": 3,
    "submitted_at": datetime.now(UTC).isoformat(),
}


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"",
        b"\xff",
        b"[]",
        b"null",
        b'"text"',
        json.dumps({**GOOD, "user_id": "1"}).encode(),
        json.dumps({**GOOD, "poll_id": 0}).encode(),
        json.dumps({**GOOD, "poll_id": 2**63}).encode(),
        json.dumps({**GOOD, "vote_option_id": True}).encode(),
        json.dumps({**GOOD, "event_id": "nope"}).encode(),
        json.dumps({**GOOD, "submitted_at": "2026-01-01T00:00:00"}).encode(),
        json.dumps({k: v for k, v in GOOD.items() if k != "poll_id"}).encode(),
    ],
)
def test_poison_is_recognised(value: bytes | None) -> None:
    with pytest.raises(PoisonEvent):
        VoteEvent.decode(value)


def test_reduction_keeps_the_last_vote_per_poll_and_user() -> None:
    a1, b1, a2, c1, a3 = (
        VoteEvent.new(1, 10, 100),
        VoteEvent.new(2, 10, 101),
        VoteEvent.new(1, 10, 102),
        VoteEvent.new(1, 11, 110),
        VoteEvent.new(1, 10, 100),
    )
    assert last_vote_per_user([a1, b1, a2, c1, a3]) == [b1, c1, a3]
    assert last_vote_per_user([]) == []
