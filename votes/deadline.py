"""A vote's deadline: answered within KAFKA_PRODUCE_TIMEOUT_SECONDS of the request's arrival.

Every step of a vote counts against it, and each step is bounded by it: the session
check (the route's `auth`, run before the view), the rate limit and the vote check, and
the produce (`votes.producer`, which bounds itself). A step still running at the deadline
is answered 503 ("not confirmed") at once. The steps before the send only read, and a
step cut short never reaches the send, so such a vote is certainly not applied.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from django.http import HttpRequest

from feedapp.handler import received_at
from votes.producer import produce_deadline

T = TypeVar("T")

# Steps given up at their deadline, still winding down (cancelled, not waited for).
_abandoned: set[asyncio.Task[Any]] = set()


class DeadlinePassed(Exception):
    """A step before the send did not finish by the vote's deadline."""


def vote_deadline(request: HttpRequest) -> float:
    """When the vote `request` carries must be answered (time.monotonic()): the produce
    deadline counted from the moment the server began handling the request."""
    return produce_deadline(received_at(request))


async def by_deadline(step: Coroutine[Any, Any, T], deadline: float) -> T:
    """The result of `step` if it finishes by `deadline` (time.monotonic()); DeadlinePassed
    if not.

    A step still running then is cancelled but not waited for: cancelling a PostgreSQL
    query waits for the server to confirm (psycopg allows that up to 5 s, and as long
    again for the query to end), so the answer would wait for the very database that
    made the step late. Only for steps whose effects may be abandoned half-way (reads).
    """
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        step.close()
        raise DeadlinePassed
    task = asyncio.ensure_future(step)
    try:
        await asyncio.wait((task,), timeout=remaining)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if task.done():
        return task.result()
    task.cancel()
    _abandoned.add(task)
    task.add_done_callback(_forget)
    raise DeadlinePassed


def _forget(task: asyncio.Task[Any]) -> None:
    _abandoned.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: what a step answered after its deadline is no news
