"""The pub/sub wire format: every message kind survives encoding, malformed ones are refused."""

from __future__ import annotations

import json

import pytest

from votes.pubsub import PollDeleted, channel_poll_id, decode, encode, updates_channel
from votes.rows import PollCounts

MESSAGES = [
    PollCounts(7, 4, [11, 12], [3, 0]),
    PollCounts(2**63 - 1, 0, [], []),
    PollDeleted(7),
]


@pytest.mark.parametrize("message", MESSAGES, ids=["vote_update", "no-options", "poll_deleted"])
def test_every_message_kind_round_trips(message) -> None:
    channel, payload = encode(message)
    assert channel == updates_channel(message.poll_id)
    assert decode(channel, payload) == message
    assert decode(channel.encode(), payload.encode()) == message  # as Valkey delivers them


def test_the_encoding_is_the_published_one() -> None:
    channel, payload = encode(PollCounts(7, 4, [11, 12], [3, 0]))
    assert channel == "vote-updates:poll:7"
    assert json.loads(payload) == {
        "type": "vote_update",
        "poll_id": 7,
        "version": 4,
        "counts": [
            {"vote_option_id": 11, "vote_count": 3},
            {"vote_option_id": 12, "vote_count": 0},
        ],
    }
    assert encode(PollDeleted(7)) == ("vote-updates:poll:7", '{"type":"poll_deleted"}')


def test_the_poll_is_the_channels() -> None:
    assert channel_poll_id(b"vote-updates:poll:42") == 42
    assert channel_poll_id("vote-updates:poll:x") is None
    assert channel_poll_id("counts:poll:42") is None
    assert decode(updates_channel(9), '{"type": "poll_deleted", "poll_id": 7}') == PollDeleted(9)


@pytest.mark.parametrize(
    ("channel", "payload"),
    [
        ("vote-updates:poll:7", "not json"),
        ("vote-updates:poll:7", '{"type": "other"}'),
        ("vote-updates:poll:7", '{"type": "vote_update", "version": "4", "counts": []}'),
        ("vote-updates:poll:7", '{"type": "vote_update", "version": true, "counts": []}'),
        ("vote-updates:poll:7", '{"type": "vote_update", "version": 4}'),
        ("vote-updates:poll:7", '{"type": "vote_update", "version": 4, "counts": [{}]}'),
        ("other:7", '{"type": "poll_deleted"}'),
    ],
)
def test_malformed_messages_are_refused(channel: str, payload: str) -> None:
    with pytest.raises((ValueError, KeyError, TypeError)):
        decode(channel, payload)
