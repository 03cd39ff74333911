"""`manage.py seed_demo`: demo users, polls of each visibility, grants and votes, made once;
`--live` keeps the counts moving. Run as a separate process against the test stack, with
the real consumer applying its votes."""

from __future__ import annotations

import re
from typing import Any

import pytest

from db.pool import connection
from db.sql import fetch_value
from demo.seed import POLLS, USERS, username
from tests.accounts_client import AddressedClient
from tests.commands import manage
from tests.waiting import eventually

pytestmark = pytest.mark.usefixtures("vote_consumer")
PASSWORD = "demo-password-for-tests"


async def snapshot() -> Any:
    """Every row the seed makes or touches, as one JSON value."""
    async with connection() as conn:
        return await fetch_value(
            conn,
            """
            WITH demo_polls AS (
                SELECT p.id FROM poll p JOIN "user" u ON u.id = p.creator_id
                WHERE u.username LIKE 'demo-%%'
            )
            SELECT json_build_object(
                'users', (SELECT json_agg(json_build_array(id, username, email, password)
                                          ORDER BY id)
                          FROM "user" WHERE username LIKE 'demo-%%'),
                'polls', (SELECT json_agg(json_build_array(id, question, poll_perms, creator_id)
                                          ORDER BY id)
                          FROM poll WHERE id IN (SELECT id FROM demo_polls)),
                'options', (SELECT json_agg(json_build_array(id, poll_id, position, text)
                                            ORDER BY id)
                            FROM vote_option WHERE poll_id IN (SELECT id FROM demo_polls)),
                'grants', (SELECT json_agg(json_build_array(id, role, user_id, poll_id,
                                                            expires_at) ORDER BY id)
                           FROM poll_grant WHERE poll_id IN (SELECT id FROM demo_polls)),
                'votes', (SELECT json_agg(json_build_array(poll_id, user_id, vote_option_id,
                                                           event_id) ORDER BY poll_id, user_id)
                          FROM vote WHERE poll_id IN (SELECT id FROM demo_polls)),
                'versions', (SELECT json_agg(json_build_array(poll_id, version) ORDER BY poll_id)
                             FROM poll_counts_version
                             WHERE poll_id IN (SELECT id FROM demo_polls))
            )
            """,
            None,
        )


async def recorded_votes() -> int:
    async with connection() as conn:
        return int(
            await fetch_value(
                conn,
                """
                SELECT count(*) FROM vote v JOIN poll p ON p.id = v.poll_id
                JOIN "user" u ON u.id = p.creator_id WHERE u.username LIKE 'demo-%%'
                """,
                None,
            )
        )


async def total_version() -> int:
    async with connection() as conn:
        found = await fetch_value(
            conn,
            """
            SELECT sum(c.version) FROM poll_counts_version c JOIN poll p ON p.id = c.poll_id
            JOIN "user" u ON u.id = p.creator_id WHERE u.username LIKE 'demo-%%'
            """,
            None,
        )
    return int(found or 0)


def poll_ids(output: str) -> dict[str, int]:
    """Question -> poll id, from the command's listing."""
    return {
        question: int(poll_id)
        for poll_id, question in re.findall(r"#(\d+)\s+\S+\s+\S+\s+(.+?)  \(/api/poll/", output)
    }


async def test_seed_demo_twice_changes_nothing_the_second_time() -> None:
    status, first = await manage("seed_demo", "--password", PASSWORD)
    assert status == 0, first
    for name in USERS:
        assert f"{username(name):12} password {PASSWORD}" in first
    assert len(re.findall(r"#\d+\s+\S+\s+created ", first)) == len(POLLS)
    sent = int(re.search(r"votes sent: (\d+)", first).group(1))  # type: ignore[union-attr]
    assert sent > 0
    # The consumer applies them (the votes are the API's own path: Kafka, then PostgreSQL).
    assert await eventually(recorded_votes, sent) == sent
    before = await snapshot()

    status, second = await manage("seed_demo")
    assert status == 0, second
    assert "nothing changed" in second
    assert "votes sent: 0" in second
    assert "password" not in second.replace("password kept", "")
    assert poll_ids(second) == poll_ids(first)
    assert await snapshot() == before

    # Its polls through the API: the public ones to anyone, the private one to its grantees.
    ids = poll_ids(first)
    by_perms = {spec.perms: ids[spec.question] for spec in POLLS}
    anonymous = AddressedClient()
    listed = {poll["id"] for poll in (await anonymous.get("/api/poll/all?limit=200")).json()}
    assert {ids[spec.question] for spec in POLLS if spec.perms != "private"} <= listed
    assert by_perms["private"] not in listed
    assert (await anonymous.get(f"/api/poll/{by_perms['private']}")).status_code == 404
    for name, visible in (("bob", True), ("dave", True), ("frank", False)):
        client = AddressedClient()
        login = {"username": username(name), "password": PASSWORD}
        assert (await client.post_json("/api/user/login", login)).status_code == 204
        page = await client.get(f"/api/poll/{by_perms['private']}")
        assert page.status_code == (200 if visible else 404), name
    counts = await anonymous.get(f"/api/vote/{by_perms['public_vote']}")
    assert counts.status_code == 200
    assert sum(option["vote_count"] for option in counts.json()) > 0


async def test_seed_demo_live_keeps_the_counts_moving() -> None:
    status, output = await manage("seed_demo", "--password", PASSWORD)
    assert status == 0, output
    version = await total_version()
    status, output = await manage("seed_demo", "--live", "20", "--seconds", "2")
    assert status == 0, output
    cast = int(re.search(r"votes cast: (\d+)", output).group(1))  # type: ignore[union-attr]
    assert cast > 0, output
    # Some of those votes changed an option, so some poll's counts version grew.
    moved = await eventually(lambda: _grew(version), True)
    assert moved, output


async def _grew(version: int) -> bool:
    return await total_version() > version


async def test_seed_demo_refuses_bad_rates_and_production() -> None:
    status, output = await manage("seed_demo", "--live", "0")
    assert status != 0
    assert "--live must be above 0" in output
    status, output = await manage(
        "seed_demo",
        FEEDAPP_MODE="production",
        FEEDAPP_ALLOWED_ORIGINS="https://feedapp.example",
        DJANGO_SECRET_KEY="s" * 50,
        JWT_SECRET_KEY="j" * 50,
    )
    assert status != 0
    assert "--allow-production" in output
