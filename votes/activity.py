"""How busy a poll is: its votes per minute, for the admin's chart."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from db.pool import autocommit_connection
from db.sql import fetch_one, queries

Q = queries("votes")


@dataclass(frozen=True)
class Activity:
    per_minute: list[int]  # oldest first, one entry per minute
    last_minute: datetime  # the start of the newest (current) minute


async def votes_per_minute(poll_id: int, minutes: int = 60) -> Activity:
    """The poll's recorded votes per minute over the last `minutes` minutes, by the time
    each was cast (a changed vote counts once, at its latest change)."""
    async with autocommit_connection() as conn:
        found = await fetch_one(
            conn, Q["votes_per_minute"], {"poll_id": poll_id, "minutes": minutes}, Activity
        )
    assert found is not None, "the statement always returns one row"
    return found
