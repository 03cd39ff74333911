"""The demo data set, made through the same services as the API.

`seed` is idempotent: it creates what is missing (users, polls, grants, each voter's first
vote) and leaves what an earlier run made as it is. `cast_live_votes` keeps changing
votes at a steady rate, so a person watching a poll sees its counts move. Votes go
through `do_submit_vote` like the API's (rights, rate limit, Kafka), so the vote
consumer must run for counts to change.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from accounts.rows import UserRow
from accounts.services import do_create_user
from db.pool import autocommit_connection
from db.sql import fetch_one, fetch_value, queries
from feedapp.errors import ServiceError
from polls.rows import GrantableRole, PollPerms
from polls.services import do_create_poll, do_grant_roles
from votes.services import do_submit_vote

Q = queries("demo")

USER_PREFIX = "demo-"
USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")


@dataclass(frozen=True)
class DemoPoll:
    creator: str
    question: str
    options: tuple[str, ...]
    perms: PollPerms
    grants: tuple[tuple[GrantableRole, str], ...] = ()


POLLS = (
    DemoPoll(
        "alice",
        "Which topping belongs on a pizza?",
        ("Mushrooms", "Pineapple", "Olives", "Just cheese"),
        "public_vote",
    ),
    DemoPoll("bob", "Tabs or spaces?", ("Tabs", "Spaces"), "public_vote"),
    DemoPoll(
        "carol",
        "Where should the team lunch be on Friday?",
        ("Thai", "Tacos", "Sushi"),
        "public_view",
        grants=(("voter", "alice"), ("voter", "bob"), ("voter", "dave"), ("voter", "erin")),
    ),
    DemoPoll(
        "alice",
        "Where should the next offsite be?",
        ("Lisbon", "Kraków", "Tallinn"),
        "private",
        grants=(("voter", "bob"), ("voter", "carol"), ("viewer", "dave"), ("creator", "erin")),
    ),
)


def username(name: str) -> str:
    return f"{USER_PREFIX}{name}"


@dataclass(frozen=True)
class SeededUser:
    user: UserRow
    password: str | None  # set only when this run created the account


@dataclass(frozen=True)
class SeededPoll:
    id: int
    spec: DemoPoll
    option_ids: list[int]
    created: bool


@dataclass
class SeedReport:
    users: list[SeededUser] = field(default_factory=list)
    polls: list[SeededPoll] = field(default_factory=list)
    grants_added: int = 0
    votes_sent: int = 0
    votes_present: int = 0

    @property
    def changed(self) -> bool:
        return bool(
            any(u.password for u in self.users)
            or any(p.created for p in self.polls)
            or self.grants_added
            or self.votes_sent
        )


async def _user(name: str, password: str | None) -> SeededUser:
    async with autocommit_connection() as conn:
        found = await fetch_one(conn, Q["find_user"], {"username": username(name)}, UserRow)
    if found is not None:
        return SeededUser(found, None)
    password = password or secrets.token_urlsafe(12)
    user = await do_create_user(username(name), f"{username(name)}@example.com", password)
    return SeededUser(user, password)


async def _poll(spec: DemoPoll, creator: UserRow) -> SeededPoll:
    where = {"creator_id": creator.id, "question": spec.question}
    async with autocommit_connection() as conn:
        poll_id = await fetch_value(conn, Q["find_poll"], where)
    created = poll_id is None
    if created:
        poll_id = (await do_create_poll(creator, spec.question, spec.options, spec.perms)).id
    async with autocommit_connection() as conn:
        option_ids = await fetch_value(conn, Q["poll_options"], {"poll_id": poll_id})
    return SeededPoll(int(poll_id), spec, list(option_ids), created)


async def _may_vote(user: UserRow, poll_id: int) -> bool:
    async with autocommit_connection() as conn:
        params = {"user_id": user.id, "poll_id": poll_id}
        return bool(await fetch_value(conn, Q["may_vote"], params))


async def _voted(user: UserRow, poll_ids: list[int]) -> set[int]:
    async with autocommit_connection() as conn:
        params = {"user_id": user.id, "poll_ids": poll_ids}
        return set(await fetch_value(conn, Q["voted_polls"], params) or [])


def _first_choice(user: UserRow, poll: SeededPoll) -> int:
    """A repeatable choice per user and poll, the earlier options more likely (a shape
    worth looking at in a chart, not a flat one)."""
    chooser = random.Random(f"{user.username}:{poll.spec.question}")  # noqa: S311 (not security)
    weights = [len(poll.option_ids) - i for i in range(len(poll.option_ids))]
    return chooser.choices(poll.option_ids, weights=weights)[0]


async def seed(password: str | None = None) -> SeedReport:
    """Create the demo users, polls, grants and first votes that do not exist yet."""
    report = SeedReport()
    users = {name: await _user(name, password) for name in USERS}
    report.users = list(users.values())
    for spec in POLLS:
        creator = users[spec.creator].user
        poll = await _poll(spec, creator)
        report.polls.append(poll)
        if spec.grants:
            grants = [(role, users[name].user.id) for role, name in spec.grants]
            refused = await do_grant_roles(poll.id, creator, grants)
            report.grants_added += len(grants) - len(refused)
    poll_ids = [poll.id for poll in report.polls]
    for seeded in report.users:
        voted = await _voted(seeded.user, poll_ids)
        for poll in report.polls:
            if not await _may_vote(seeded.user, poll.id):
                continue
            if poll.id in voted:
                report.votes_present += 1
                continue
            await do_submit_vote(seeded.user, poll.id, _first_choice(seeded.user, poll))
            report.votes_sent += 1
    return report


@dataclass
class LiveTally:
    cast: int = 0
    refused: dict[int, int] = field(default_factory=dict)  # HTTP status -> how many


async def cast_live_votes(
    seeded: SeedReport,
    rate: float,
    seconds: float,
    progress: Callable[[LiveTally], None] | None = None,
) -> LiveTally:
    """Change random votes of the seeded users on the seeded polls, `rate` per second, for
    `seconds`; refusals (e.g. 429, 503) are counted, not raised."""
    voters = [
        (seeded_user.user, poll)
        for seeded_user in seeded.users
        for poll in seeded.polls
        if await _may_vote(seeded_user.user, poll.id)
    ]
    chooser = random.Random()  # noqa: S311 (not security)
    tally = LiveTally()
    started = time.monotonic()
    next_at = started
    last_report = started
    while time.monotonic() - started < seconds:
        user, poll = chooser.choice(voters)
        try:
            await do_submit_vote(user, poll.id, chooser.choice(poll.option_ids))
            tally.cast += 1
        except ServiceError as exc:
            tally.refused[exc.status_code] = tally.refused.get(exc.status_code, 0) + 1
        if progress and time.monotonic() - last_report >= 5:
            progress(tally)
            last_report = time.monotonic()
        next_at += 1 / rate
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    return tally
