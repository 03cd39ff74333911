"""The vote consumer's business logic: two steps, as plain functions.

1. `apply_batches` runs in ONE PostgreSQL transaction that also stores each partition's
   last applied offset, and skips records at or below the stored ones. Redelivery thus
   changes nothing (exactly-once effect over at-least-once delivery).
2. `cache_counts` runs after that transaction committed: the counts it changed go to
   Valkey, cached and published to live streams (votes.counts.store_counts).

Kafka, batching, the commit policy, retries and shutdown live in `votes.runner`, which
knows nothing of votes or counts.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import psycopg
from psycopg import errors
from valkey.exceptions import ValkeyError

from db.sql import fetch_all_sync, queries
from db.valkey import get_sync_valkey
from votes.counts import store_counts
from votes.messages import PoisonEvent, VoteEvent
from votes.reduce import last_vote_per_user
from votes.rows import PollCounts

log = logging.getLogger(__name__)
Q = queries("votes")


class StepUnavailable(Exception):
    """A step could not run because a service it needs is down; the runner retries it."""


class Record(Protocol):
    """A Kafka record as the steps see it: kafka-python's ConsumerRecord is one, passed
    as it comes (a copy of each record consumed was a noticeable share of the runner's
    time), and so is `StoredRecord`."""

    @property
    def offset(self) -> int: ...

    @property
    def value(self) -> bytes | None: ...


class StoredRecord(NamedTuple):
    """A record made by hand (tests, tools)."""

    offset: int
    value: bytes | None


@dataclass
class BatchOutcome:
    last_offsets: dict[int, int]  # partition -> last offset now stored
    fresh: int = 0  # records above the stored offsets
    applicable: int = 0  # votes (after reduction) whose poll, option and user exist
    poison: int = 0  # records that are not vote events
    gone: int = 0  # votes for a poll, option or user that no longer exists
    counts: list[PollCounts] = field(default_factory=list)  # polls whose counts changed


def apply_batches(
    conn: psycopg.Connection, group: str, topic: str, batches: Mapping[int, Sequence[Record]]
) -> BatchOutcome:
    """Apply each partition's records (in offset order) and store each partition's last
    offset, all in ONE transaction; records at or below a stored offset are skipped.

    Votes of one poll share a partition, so reducing across partitions keeps per-poll order.
    """
    partitions = sorted(batches)
    where = {"consumer_group": group, "topic": topic}
    with conn.transaction():
        rows = conn.execute(Q["claim_partitions"], {**where, "partitions": partitions})
        stored = {int(partition): int(offset) for partition, offset in rows.fetchall()}
        outcome = BatchOutcome(last_offsets=dict(stored))
        events: list[VoteEvent] = []
        moved: dict[int, int] = {}
        for partition in partitions:
            fresh = [r for r in batches[partition] if r.offset > stored[partition]]
            if fresh:
                outcome.fresh += len(fresh)
                events.extend(_decode(fresh, topic, partition, outcome))
                moved[partition] = fresh[-1].offset
        if not moved:
            return outcome
        votes = last_vote_per_user(events)
        if votes:
            conn.execute(Q["lock_polls"], {"poll_ids": sorted({v.poll_id for v in votes})})
        touched = _apply_votes(conn, votes, outcome)
        if touched:
            outcome.counts = _bump_versions(conn, touched)
        conn.execute(
            Q["store_offsets"],
            {**where, "partitions": list(moved), "last_offsets": list(moved.values())},
        )
        outcome.last_offsets.update(moved)
    return outcome


def cache_counts(outcomes: Sequence[BatchOutcome]) -> None:
    """Write the counts that committed batches changed to Valkey, and publish them.

    Several outcomes (batches committed while Valkey was down) collapse to the latest
    counts per poll. StepUnavailable while Valkey is down: nothing is lost, since the
    counts are in PostgreSQL and the cache refuses versions older than its own.
    """
    latest = {counts.poll_id: counts for outcome in outcomes for counts in outcome.counts}
    if not latest:
        return
    try:
        store_counts(get_sync_valkey(), list(latest.values()))
    except (ValkeyError, OSError) as exc:
        raise StepUnavailable(
            f"Valkey unavailable, {len(latest)} polls' counts not cached: {exc!r}"
        ) from exc


def _decode(
    records: Sequence[Record], topic: str, partition: int, outcome: BatchOutcome
) -> list[VoteEvent]:
    events = []
    for record in records:
        try:
            events.append(VoteEvent.decode(record.value))
        except PoisonEvent as exc:
            outcome.poison += 1
            log.warning("skipping record %s/%d@%d: %s", topic, partition, record.offset, exc)
    return events


def _apply_votes(
    conn: psycopg.Connection, votes: list[VoteEvent], outcome: BatchOutcome
) -> list[int]:
    """Apply all votes in one statement; on a constraint conflict, one by one."""
    if not votes:
        return []
    try:
        with conn.transaction():  # a savepoint: a failure leaves the batch's transaction usable
            applied, touched = _apply(conn, votes)
    except (errors.IntegrityError, errors.DataError) as exc:
        # E.g. a poll deleted between the check and the insert: find the culprits.
        log.warning("batch of %d votes conflicted (%r); applying one by one", len(votes), exc)
        applied, touched_set = 0, set()
        for vote in votes:
            try:
                with conn.transaction():
                    one_applied, one_touched = _apply(conn, [vote])
            except (errors.IntegrityError, errors.DataError) as one_exc:
                log.warning("skipping vote event %s: %r", vote.event_id, one_exc)
                continue
            applied += one_applied
            touched_set.update(one_touched)
        touched = sorted(touched_set)
    outcome.applicable += applied
    outcome.gone += len(votes) - applied
    return touched


def _apply(conn: psycopg.Connection, votes: list[VoteEvent]) -> tuple[int, list[int]]:
    row = conn.execute(
        Q["apply_votes"],
        {
            "poll_ids": [vote.poll_id for vote in votes],
            "user_ids": [vote.user_id for vote in votes],
            "vote_option_ids": [vote.vote_option_id for vote in votes],
            "event_ids": [vote.event_id for vote in votes],
            "submitted_at": [vote.submitted_at for vote in votes],
        },
    ).fetchone()
    assert row is not None
    return int(row[0]), list(row[1])


def _bump_versions(conn: psycopg.Connection, poll_ids: list[int]) -> list[PollCounts]:
    """A new counts version for each poll, and its counts at that version."""
    return fetch_all_sync(conn, Q["bump_versions"], {"poll_ids": poll_ids}, PollCounts)


def stored_offsets(conn: psycopg.Connection, group: str, topic: str) -> dict[int, int]:
    """The last applied offset per partition of this group and topic."""
    rows = conn.execute(Q["stored_offsets"], {"consumer_group": group, "topic": topic})
    return {int(partition): int(offset) for partition, offset in rows.fetchall()}
