"""Making polls for tests straight in the database (same rows as poll creation writes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from accounts.users import User
from db.pool import connection


@dataclass(frozen=True)
class SamplePoll:
    id: int
    option_ids: list[int]


_PUBLIC_ROLE = {"public_vote": "voter", "public_view": "viewer", "private": None}


async def make_poll(
    creator: User, options: int = 3, perms: str = "public_vote", expires_at: datetime | None = None
) -> SamplePoll:
    async with connection() as conn:
        cur = await conn.execute(
            "INSERT INTO poll (question, creator_id, poll_perms, expires_at) "
            "VALUES ('Test question?', %s, %s, %s) RETURNING id",
            (creator.id, perms, expires_at),
        )
        row = await cur.fetchone()
        assert row is not None
        poll_id = row[0]
        cur = await conn.execute(
            "INSERT INTO vote_option (poll_id, position, text) "
            "SELECT %s, p, 'option ' || p FROM generate_series(0, %s - 1) AS p "
            "RETURNING id",
            (poll_id, options),
        )
        option_ids = sorted(r[0] for r in await cur.fetchall())
        await conn.execute(
            "INSERT INTO vote_count (vote_option_id, poll_id) SELECT unnest(%s::bigint[]), %s",
            (option_ids, poll_id),
        )
        await conn.execute("INSERT INTO poll_counts_version (poll_id) VALUES (%s)", (poll_id,))
        await conn.execute(
            "INSERT INTO poll_grant (role, user_id, poll_id) VALUES ('creator', %s, %s)",
            (creator.id, poll_id),
        )
        if _PUBLIC_ROLE[perms]:
            await conn.execute(
                "INSERT INTO poll_grant (role, poll_id) VALUES (%s, %s)",
                (_PUBLIC_ROLE[perms], poll_id),
            )
    return SamplePoll(poll_id, option_ids)


async def grant(user: User, poll: SamplePoll, role: str) -> None:
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
    """User id -> option id of the votes recorded for a poll."""
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
