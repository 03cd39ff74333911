"""Vote submission and counts reading (web side)."""

from __future__ import annotations

import logging
import time

from django.conf import settings

from accounts import throttle
from accounts.rows import UserRow
from db.pool import run_read
from db.sql import fetch_one, fetch_value, queries
from feedapp.errors import Conflict, Forbidden, NotFound, Unavailable
from polls.errors import PollNotFound
from votes.counts import read_counts, read_counts_json
from votes.deadline import DeadlinePassed, by_deadline
from votes.messages import VoteEvent
from votes.metrics import VOTE_PRODUCE_FAILURES, VOTE_PRODUCE_SECONDS
from votes.producer import VoteNotEnqueued, produce_deadline, produce_vote
from votes.rows import PollCounts, VoteCheck

log = logging.getLogger(__name__)
Q = queries("votes")

VOTE_NOT_CONFIRMED = "The vote was not confirmed. It may still be counted; sending it again is safe"


async def do_submit_vote(
    user: UserRow, poll_id: int, vote_option_id: int, deadline: float | None = None
) -> VoteEvent:
    """Check the right to vote now, then enqueue the vote durably in Kafka, answering by
    `deadline` (time.monotonic(); default: KAFKA_PRODUCE_TIMEOUT_SECONDS from now).

    TooManyRequests: over the user's vote rate; Forbidden: no right to vote (also for a
    poll that does not exist); NotFound: the option is not in that poll; Conflict: the
    poll has expired; Unavailable: the broker did not acknowledge in time or is known to
    be unreachable (the vote may still be counted; sending it again is safe), or
    PostgreSQL is unavailable or did not answer the checks by the deadline (the vote was
    not sent).
    """
    # Counted from the request's start, not from the send: time spent on the checks below
    # (waiting for a database connection on a busy worker) is time the voter waits too.
    if deadline is None:
        deadline = produce_deadline()
    try:
        # Bounded by the deadline too: PostgreSQL may take longer than the whole deadline
        # (its pool's timeout is as long), and the answer would wait for it.
        await by_deadline(_check_vote(user, poll_id, vote_option_id), deadline)
    except DeadlinePassed:
        log.info("vote of user %d on poll %d not confirmed: not checked in time", user.id, poll_id)
        raise Unavailable(VOTE_NOT_CONFIRMED) from None
    event = VoteEvent.new(user.id, poll_id, vote_option_id)
    started = time.perf_counter()
    try:
        await produce_vote(event, deadline)
    except VoteNotEnqueued as exc:
        VOTE_PRODUCE_FAILURES.inc()
        # The producer logs outages once; one line per vote would flood the log.
        log.info("vote of user %d on poll %d not confirmed: %s", user.id, poll_id, exc)
        raise Unavailable(VOTE_NOT_CONFIRMED) from exc
    finally:
        VOTE_PRODUCE_SECONDS.observe(time.perf_counter() - started)
    return event


async def _check_vote(user: UserRow, poll_id: int, vote_option_id: int) -> None:
    """The vote rate limit and the right to cast this vote now; raises if either says no."""
    rate = throttle.Rate(settings.VOTE_RATE_PER_SECOND, 1.0, settings.VOTE_RATE_BURST)
    throttle.raise_if_denied(
        await throttle.consume("votes:user", str(user.id), rate), "Too many votes; slow down"
    )
    params = {"user_id": user.id, "poll_id": poll_id, "vote_option_id": vote_option_id}
    check = await run_read(lambda conn: fetch_one(conn, Q["check_vote"], params, VoteCheck))
    assert check is not None
    if not check.may_vote:
        raise Forbidden("You may not vote on this poll")
    if not check.option_in_poll:
        raise NotFound("This option does not belong to this poll")
    if check.expired:
        raise Conflict("This poll has expired")


async def get_visible_counts(user: UserRow | None, poll_id: int) -> PollCounts:
    """The poll's counts if the caller may view it; PollNotFound otherwise."""
    counts = await read_counts(poll_id) if await _may_view(user, poll_id) else None
    if counts is None:
        raise PollNotFound()
    return counts


async def get_visible_counts_json(user: UserRow | None, poll_id: int) -> bytes:
    """The same as get_visible_counts, as the API's JSON list (the cache's own bytes)."""
    counts = await read_counts_json(poll_id) if await _may_view(user, poll_id) else None
    if counts is None:
        raise PollNotFound()
    return counts


async def _may_view(user: UserRow | None, poll_id: int) -> bool:
    params = {"user_id": user.id if user else None, "poll_id": poll_id}
    return bool(await run_read(lambda conn: fetch_value(conn, Q["may_view_poll"], params)))
