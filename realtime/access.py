"""Whether a live stream's viewer may still watch: a ban, a revoked grant, a logout or a
poll that became invisible ends the stream (DESIGN.md, "Real time").

A stream asks at the latest every STREAM_RECHECK_SECONDS, and before passing on an
update once its last answer is older than AUTH_USER_CACHE_SECONDS. The answers come
from PostgreSQL, in batches: every question about one poll asked in the same turn of
the event loop is answered by one query, and the periodic checks of all streams fall
on the same instants (multiples of the interval), so a poll with thousands of viewers
costs one query per round, not one per viewer.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field

import psycopg

from accounts.auth import Session
from db.pool import autocommit_connection
from db.singletons import PerLoop
from db.sql import fetch_all, queries
from feedapp.errors import Unavailable

log = logging.getLogger(__name__)
Q = queries("realtime")

# A viewer as the query knows them: (user id, session id, generation), or None for
# anonymous callers.
ViewerKey = tuple[int, str, int] | None


@dataclass(frozen=True)
class _Allowed:
    user_id: int | None
    session_id: str | None


@dataclass(frozen=True)
class Viewer:
    """Who watches a poll: their session (None: anonymous), asked about again and again."""

    poll_id: int
    session: Session | None

    @property
    def key(self) -> ViewerKey:
        if self.session is None:
            return None
        claims = self.session.claims
        return (claims.user_id, claims.session_id, claims.generation)

    def seconds_left(self) -> float:
        """Until the viewer's token expires (a stream never outlives it); inf if anonymous."""
        if self.session is None:
            return math.inf
        return self.session.claims.expires_at - time.time()

    async def may_still_watch(self) -> bool | None:
        """True or False; None when PostgreSQL could not be asked (keep, ask again later)."""
        return await get_access_checks().ask(self.poll_id, self.key)


def next_check_at(now: float, interval: float) -> float:
    """The next multiple of `interval` after `now`: every stream of the process checks
    at the same instants, so that their questions share queries."""
    return (math.floor(now / interval) + 1) * interval


@dataclass(eq=False)
class AccessChecks:
    """The questions of one event loop's streams, answered in batches per poll."""

    queries_made: int = 0  # for tests and monitoring
    _pending: dict[int, dict[ViewerKey, list[asyncio.Future[bool | None]]]] = field(
        default_factory=dict
    )
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def ask(self, poll_id: int, viewer: ViewerKey) -> bool | None:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[bool | None] = loop.create_future()
        questions = self._pending.get(poll_id)
        if questions is None:
            questions = self._pending[poll_id] = {}
            # Answered once this turn of the loop is over: the other streams of the poll
            # woken by the same update or the same instant ask in this turn too.
            loop.call_soon(self._answer_later, poll_id)
        questions.setdefault(viewer, []).append(answer)
        return await answer

    def _answer_later(self, poll_id: int) -> None:
        questions = self._pending.pop(poll_id, {})
        task = asyncio.get_running_loop().create_task(self._answer(poll_id, questions))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(
        self, poll_id: int, questions: dict[ViewerKey, list[asyncio.Future[bool | None]]]
    ) -> None:
        signed_in = [key for key in questions if key is not None]
        allowed: set[ViewerKey] | None = None
        try:
            allowed = await self._query(poll_id, signed_in, None in questions)
        except Unavailable as exc:  # PostgreSQL is down: db.pool reports that once
            log.info("stream access of poll %d not checked, asking later: %r", poll_id, exc)
        except (psycopg.Error, OSError) as exc:
            log.warning("stream access of poll %d not checked, asking later: %r", poll_id, exc)
        finally:
            # Every question gets an answer (None: ask again later), whatever went wrong:
            # a stream waits for it before it sends anything more.
            for key, answers in questions.items():
                verdict = None if allowed is None else key in allowed
                for answer in answers:
                    if not answer.done():
                        answer.set_result(verdict)

    async def _query(
        self, poll_id: int, viewers: list[tuple[int, str, int]], anonymous: bool
    ) -> set[ViewerKey]:
        self.queries_made += 1
        params = {
            "poll_id": poll_id,
            "user_ids": [user_id for user_id, _, _ in viewers],
            "session_ids": [session_id for _, session_id, _ in viewers],
            "generations": [generation for _, _, generation in viewers],
            "anonymous": anonymous,
        }
        async with autocommit_connection() as conn:
            rows = await fetch_all(conn, Q["viewers_still_allowed"], params, _Allowed)
        generation_of = {(user_id, session_id): gen for user_id, session_id, gen in viewers}
        found: set[ViewerKey] = set()
        for row in rows:
            if row.user_id is None or row.session_id is None:
                found.add(None)
            else:
                generation = generation_of[(row.user_id, row.session_id)]
                found.add((row.user_id, row.session_id, generation))
        return found


_checks: PerLoop[AccessChecks] = PerLoop(AccessChecks)


def get_access_checks() -> AccessChecks:
    """The running loop's batcher of access questions."""
    return _checks.get()
