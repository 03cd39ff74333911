"""Reducing a batch of vote events to what it changes (pure logic)."""

from __future__ import annotations

from collections.abc import Iterable

from votes.messages import VoteEvent


def last_vote_per_user(events: Iterable[VoteEvent]) -> list[VoteEvent]:
    """The last event per (poll, user), given events in offset order.

    Applying the result gives the same final state as applying every event one by
    one: each vote replaces the previous one of the same user on the same poll.
    The result keeps the order in which each (poll, user)'s last vote arrived.
    """
    last: dict[tuple[int, int], VoteEvent] = {}
    for event in events:
        key = (event.poll_id, event.user_id)
        last.pop(key, None)  # re-insert so the order follows the latest arrival
        last[key] = event
    return list(last.values())
