"""Polls for tests, and reading their votes and counts straight from PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.test import AsyncClient

from accounts.rows import UserRow
from db.pool import connection
from polls.services import PollPerms, do_create_poll


@dataclass(frozen=True)
class SamplePoll:
    id: int
    option_ids: list[int]


async def make_poll(
    creator: UserRow,
    options: int = 3,
    perms: PollPerms = "public_vote",
    expires_at: datetime | None = None,
) -> SamplePoll:
    """A poll made by the real service (validation skipped, so expiry may be near)."""
    poll = await do_create_poll(
        creator, "Test question?", [f"option {n}" for n in range(options)], perms, expires_at
    )
    return SamplePoll(poll.id, list(poll.option_ids))


async def submit_vote(client: AsyncClient, poll_id: int, option_id: int) -> int:
    """Submit a vote through the API; the status code."""
    response = await client.post(
        "/api/vote/submit",
        {"poll_id": poll_id, "vote_option_id": option_id},
        content_type="application/json",
    )
    return response.status_code


async def grant(user: UserRow, poll: SamplePoll, role: str) -> None:
    async with connection() as conn:
        await conn.execute(
            "INSERT INTO poll_grant (role, user_id, poll_id) VALUES (%s, %s, %s)",
            (role, user.id, poll.id),
        )


async def db_counts(poll_id: int) -> dict[int, int]:
    """Option id -> count, straight from PostgreSQL."""
    async with connection() as conn:
        cur = await conn.execute(
            "SELECT o.id, coalesce(c.vote_count, 0) FROM vote_option o "
            "LEFT JOIN vote_count c ON c.vote_option_id = o.id WHERE o.poll_id = %s",
            (poll_id,),
        )
        return dict(await cur.fetchall())


async def db_votes(poll_id: int) -> dict[int, int]:
    """UserRow id -> option id of the votes recorded for a poll."""
    async with connection() as conn:
        cur = await conn.execute(
            "SELECT user_id, vote_option_id FROM vote WHERE poll_id = %s", (poll_id,)
        )
        return dict(await cur.fetchall())


async def db_version(poll_id: int) -> int:
    async with connection() as conn:
        cur = await conn.execute(
            "SELECT version FROM poll_counts_version WHERE poll_id = %s", (poll_id,)
        )
        row = await cur.fetchone()
        return int(row[0]) if row else 0
