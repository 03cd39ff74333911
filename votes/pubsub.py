"""The pub/sub wire format of live counts: channel names and the messages on them.

The consumer publishes each poll's new counts, and a deletion publishes its end, on the
poll's channel `vote-updates:poll:{id}`; every web process's hub (realtime.hub)
subscribes to the channels its clients watch. Messages are compact JSON:

    {"type":"vote_update","poll_id":7,"version":4,"counts":[{"vote_option_id":11,"vote_count":3}]}
    {"type":"poll_deleted"}

`encode` and `decode` are each other's inverse: `decode(*encode(message)) == message`.
The poll is the channel's; `decode` checks every field it uses, since a malformed
message must be dropped, not reach a client.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from votes.rows import PollCounts

CHANNEL_PREFIX = "vote-updates:poll:"
VOTE_UPDATE = "vote_update"
POLL_DELETED = "poll_deleted"


@dataclass(frozen=True)
class PollDeleted:
    """The poll is gone: its streams say so and end."""

    poll_id: int


# A vote_update carries a poll's counts at a version.
Message = PollCounts | PollDeleted


def updates_channel(poll_id: int) -> str:
    """The channel of a poll's messages."""
    return f"{CHANNEL_PREFIX}{poll_id}"


def channel_poll_id(channel: bytes | str) -> int | None:
    """The poll a channel belongs to; None for a channel that is not a poll's."""
    name = channel.decode("latin-1") if isinstance(channel, bytes) else channel
    tail = name.removeprefix(CHANNEL_PREFIX)
    return int(tail) if tail != name and tail.isdigit() else None


def encode(message: Message) -> tuple[str, str]:
    """The channel and the payload to publish `message` with."""
    if isinstance(message, PollDeleted):
        body: dict[str, object] = {"type": POLL_DELETED}
    else:
        body = {
            "type": VOTE_UPDATE,
            "poll_id": message.poll_id,
            "version": message.version,
            "counts": message.as_list(),
        }
    return updates_channel(message.poll_id), json.dumps(body, separators=(",", ":"))


def decode(channel: bytes | str, payload: bytes | str) -> Message:
    """The message a poll's channel carried; ValueError, KeyError or TypeError if malformed."""
    poll_id = channel_poll_id(channel)
    if poll_id is None:
        raise ValueError(f"not a poll's channel: {channel!r}")
    body = json.loads(payload)
    kind = body["type"]
    if kind == POLL_DELETED:
        return PollDeleted(poll_id)
    if kind != VOTE_UPDATE:
        raise ValueError(f"unknown message type {kind!r}")
    pairs = [(_int(pair["vote_option_id"]), _int(pair["vote_count"])) for pair in body["counts"]]
    return PollCounts(
        poll_id,
        _int(body["version"]),
        [option_id for option_id, _ in pairs],
        [count for _, count in pairs],
    )


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"not an integer: {value!r}")
    return value
