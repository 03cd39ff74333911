"""Shared set-up for benchmarks: the `bench` stack, its database and bulk test data.

Importing this module points the settings at the `bench` stack profile (its own
ports, data folder and database), so benchmarks never touch dev or test data.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench.common import setup_django, start_stack
from stack.profiles import PROJECT_ROOT, get_profile

PROFILE = get_profile("bench")
setup_django(PROFILE.name, {"FEEDAPP_ENV_FILE": "/nonexistent"})

import psycopg  # noqa: E402
from django.conf import settings  # noqa: E402


def prepare_stack() -> None:
    """Start the bench stack (idempotent) and bring its schema up to date."""
    start_stack(PROFILE.name)


@dataclass(frozen=True)
class Dataset:
    user_ids: list[int]
    polls: list[tuple[int, list[int]]]  # (poll id, option ids)


def make_dataset(users: int, polls: int, options: int = 4) -> Dataset:
    """Users and public polls (with counts rows and grants), made in bulk with SQL."""
    tag = uuid.uuid4().hex[:8]
    with psycopg.connect(settings.DATABASE_URL) as conn:
        user_ids = [
            row[0]
            for row in conn.execute(
                'INSERT INTO "user" (username, email, password) '
                "SELECT 'b' || %(tag)s || '_' || n, 'b' || %(tag)s || '_' || n || '@bench.test', "
                "'!bench' FROM generate_series(1, %(users)s) AS n RETURNING id",
                {"tag": tag, "users": users},
            ).fetchall()
        ]
        poll_ids = [
            row[0]
            for row in conn.execute(
                "INSERT INTO poll (question, creator_id) "
                "SELECT 'Bench poll ' || n, %(creator)s FROM generate_series(1, %(polls)s) AS n "
                "RETURNING id",
                {"creator": user_ids[0], "polls": polls},
            ).fetchall()
        ]
        rows = conn.execute(
            "INSERT INTO vote_option (poll_id, position, text) "
            "SELECT p, o, 'option ' || o FROM unnest(%(polls)s::bigint[]) AS p, "
            "generate_series(0, %(options)s - 1) AS o RETURNING poll_id, id",
            {"polls": poll_ids, "options": options},
        ).fetchall()
        conn.execute(
            "INSERT INTO vote_count (vote_option_id, poll_id) SELECT id, poll_id FROM vote_option "
            "WHERE poll_id = ANY(%(polls)s)",
            {"polls": poll_ids},
        )
        conn.execute(
            "INSERT INTO poll_counts_version (poll_id) SELECT unnest(%(polls)s::bigint[])",
            {"polls": poll_ids},
        )
        conn.execute(
            "INSERT INTO poll_grant (role, poll_id) SELECT 'voter', unnest(%(polls)s::bigint[])",
            {"polls": poll_ids},
        )
    options_of: dict[int, list[int]] = {poll_id: [] for poll_id in poll_ids}
    for poll_id, option_id in sorted(rows):
        options_of[poll_id].append(option_id)
    return Dataset(user_ids, [(poll_id, options_of[poll_id]) for poll_id in poll_ids])


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def git_revision(checkout: Path = PROJECT_ROOT) -> str:
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=checkout, capture_output=True, text=True
    ).stdout.strip()


def now() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
