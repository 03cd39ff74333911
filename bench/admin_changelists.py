"""Admin changelists on large tables, timed as a signed-in moderator.

Fills a database of its own on the `bench` stack's PostgreSQL with COPY (by default
1,000,000 users, 200,000 polls with 4 options each, their counts and grants,
1,000,000 votes, 100,000 reports and 50 moderators), then starts uvicorn (one
worker, DEBUG off) against it, signs in to /admin/ as a staff member through the
login form, and requests each changelist page (default view, filters, searches,
sorts) several times. It reports, per page, the median and slowest answer time and
the web process's CPU time per request (the rest is PostgreSQL's).

    python -m bench.admin_changelists                    # fill once, then time
    python -m bench.admin_changelists --refill           # drop and fill again
    python -m bench.admin_changelists --users 100000 --polls 20000 --repeat 3

The data stays in the database `feedapp_bench_admin` between runs (filling takes a
few minutes); the script refills when the sizes asked for differ.
Target (issue 16): every page under 1 s.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import RESULTS_DIR, machine, setup_django, start_uvicorn
from stack import postgres, valkey
from stack.profiles import get_profile

PROFILE = get_profile("bench")
DATABASE = "feedapp_bench_admin"
DATABASE_URL = PROFILE.database_url.rsplit("/", 1)[0] + f"/{DATABASE}"
STAFF_PASSWORD = "bench-admin-password"  # noqa: S105 (a throw-away local account)
OPTIONS_PER_POLL = 4
REASONS = ("spam", "abuse", "illegal", "other")

setup_django(PROFILE.name, {"FEEDAPP_ENV_FILE": "/nonexistent", "DATABASE_URL": DATABASE_URL})

import httpx  # noqa: E402
import psycopg  # noqa: E402

from db.migrate import dbmate  # noqa: E402


@dataclass(frozen=True)
class Sizes:
    users: int
    polls: int
    votes: int
    reports: int

    def as_text(self) -> str:
        return f"users={self.users} polls={self.polls} votes={self.votes} reports={self.reports}"


# --- Filling ------------------------------------------------------------------------------


def _copy(conn: psycopg.Connection, statement: str, rows: Iterable[Sequence[object]]) -> None:
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def fill(sizes: Sizes, seed: int = 16) -> None:
    """A fresh database with the schema (dbmate) and the data (COPY)."""
    rng = random.Random(seed)
    dbmate(DATABASE_URL, "drop")
    dbmate(DATABASE_URL, "create")
    dbmate(DATABASE_URL, "up")
    now = datetime.now(UTC)
    began = time.monotonic()
    with psycopg.connect(DATABASE_URL) as conn:
        # Every row below is consistent by construction (ids are assigned 1..n in COPY
        # order in a fresh database); skipping the per-row foreign key triggers makes the
        # fill minutes shorter. Bench data only, on the bench's own database.
        conn.execute("SET session_replication_role = replica")
        _copy(
            conn,
            'COPY "user" (username, email, password, created_at, is_active) FROM STDIN',
            (
                (
                    f"user{n}",
                    f"user{n}@bench.test",
                    "!bench",
                    now - timedelta(seconds=sizes.users - n),
                    n % 500 != 0,  # one in 500 banned
                )
                for n in range(1, sizes.users + 1)
            ),
        )
        # One prolific creator (user 2) holds a tenth of the polls; the rest are spread.
        creators = [2 if n % 10 == 0 else rng.randint(3, sizes.users) for n in range(sizes.polls)]
        perms = ("public_vote", "public_vote", "public_view", "private")
        _copy(
            conn,
            "COPY poll (question, creator_id, poll_perms, created_at, expires_at) FROM STDIN",
            (
                (
                    f"Poll {n}: which {rng.choice(('colour', 'city', 'film', 'dish'))} wins?",
                    creators[n - 1],
                    perms[n % 4],
                    now - timedelta(seconds=sizes.polls - n),
                    now - timedelta(days=1) if n % 7 == 0 else None,
                )
                for n in range(1, sizes.polls + 1)
            ),
        )
        _copy(
            conn,
            "COPY vote_option (poll_id, position, text) FROM STDIN",
            (
                (poll, position, f"option {position}")
                for poll in range(1, sizes.polls + 1)
                for position in range(OPTIONS_PER_POLL)
            ),
        )
        # Votes: random (poll, user) pairs; the counts are derived from them below.
        pairs: set[tuple[int, int]] = set()
        while len(pairs) < sizes.votes:
            pairs.add((rng.randint(1, sizes.polls), rng.randint(1, sizes.users)))
        _copy(
            conn,
            "COPY vote (poll_id, user_id, vote_option_id, event_id, submitted_at) FROM STDIN",
            (
                (
                    poll,
                    user,
                    (poll - 1) * OPTIONS_PER_POLL + rng.randrange(OPTIONS_PER_POLL) + 1,
                    uuid.uuid4(),
                    now,
                )
                for poll, user in pairs
            ),
        )
        conn.execute(
            "INSERT INTO vote_count (vote_option_id, poll_id, vote_count)"
            " SELECT o.id, o.poll_id, count(v.user_id) FROM vote_option o"
            " LEFT JOIN vote v ON v.vote_option_id = o.id GROUP BY o.id, o.poll_id"
        )
        conn.execute(
            "INSERT INTO poll_counts_version (poll_id, version, total_votes)"
            " SELECT poll_id, 1, sum(vote_count) FROM vote_count GROUP BY poll_id"
        )
        everyone = {"public_vote": "voter", "public_view": "viewer"}
        _copy(
            conn,
            "COPY poll_grant (role, user_id, poll_id, granted_by, granted_at) FROM STDIN",
            (
                row
                for n in range(1, sizes.polls + 1)
                for row in (
                    ("creator", creators[n - 1], n, creators[n - 1], now),
                    *(
                        [(everyone[perms[n % 4]], None, n, creators[n - 1], now)]
                        if perms[n % 4] in everyone
                        else []
                    ),
                )
            ),
        )
        _copy(
            conn,
            "COPY poll_grant (role, user_id, poll_id, granted_by, granted_at) FROM STDIN",
            (("moderator", 1000 + n, None, 1, now) for n in range(50)),
        )
        # Reports: a twentieth of the polls are reported, a few of them heavily; about
        # three in five reports are still open.
        reported = rng.sample(range(1, sizes.polls + 1), max(1, sizes.polls // 20))
        seen: set[tuple[int, int]] = set()
        rows: list[tuple[object, ...]] = []
        while len(rows) < sizes.reports:
            poll = reported[min(int(rng.expovariate(1 / 200)), len(reported) - 1)]
            reporter = rng.randint(1, sizes.users)
            if (poll, reporter) in seen:
                continue
            seen.add((poll, reporter))
            created = now - timedelta(minutes=rng.randint(0, 60 * 24 * 30))
            is_open = rng.random() < 0.6
            rows.append(
                (
                    poll,
                    reporter,
                    rng.choice(REASONS),
                    rng.choice((None, "see the question", "offensive")),
                    created,
                    None if is_open else "dismissed",
                    None if is_open else 1,
                    None if is_open else created + timedelta(hours=1),
                )
            )
        _copy(
            conn,
            "COPY poll_report (poll_id, reporter_id, reason, note, created_at, resolution,"
            " resolved_by, resolved_at) FROM STDIN",
            rows,
        )
        conn.execute(
            "UPDATE poll SET hidden_at = now() WHERE id IN"
            " (SELECT poll_id FROM poll_report WHERE resolved_at IS NULL"
            "  GROUP BY poll_id HAVING count(*) >= 5)"
        )
        conn.execute("RESET session_replication_role")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_dataset (sizes text NOT NULL);TRUNCATE bench_dataset;"
        )
        conn.execute("INSERT INTO bench_dataset (sizes) VALUES (%s)", (sizes.as_text(),))
    with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    print(f"filled {sizes.as_text()} in {time.monotonic() - began:.0f} s", flush=True)


def filled_sizes() -> str | None:
    try:
        with psycopg.connect(DATABASE_URL, connect_timeout=5) as conn:
            row = conn.execute("SELECT sizes FROM bench_dataset").fetchone()
    except psycopg.Error:
        return None
    return row[0] if row else None


def migrate() -> None:
    """Apply migrations added since the fill (e.g. new indexes), then refresh statistics."""
    dbmate(DATABASE_URL, "up")
    with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
        conn.execute("ANALYZE")


# --- Timing -------------------------------------------------------------------------------


def make_staff() -> str:
    from accounts.services import do_create_user
    from db.sync_bridge import run_sync

    name = f"bench_staff_{uuid.uuid4().hex[:8]}"
    run_sync(do_create_user(name, f"{name}@bench.test", STAFF_PASSWORD, is_staff=True))
    return name


def sign_in(base: str, login: str) -> httpx.Client:
    """A client signed in to the admin through its login form, as a browser is."""
    client = httpx.Client(base_url=base, timeout=60)
    form = client.get("/admin/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
    assert token is not None, "no CSRF token on the login page"
    landed = client.post(
        "/admin/login/?next=/admin/",
        data={"username": login, "password": STAFF_PASSWORD, "csrfmiddlewaretoken": token.group(1)},
    )
    assert landed.headers.get("Location") == "/admin/", f"sign-in failed: {landed.status_code}"
    return client


def column(admin_class: type, name: str) -> int:
    """The changelist's sort index of a column (0 is the action checkbox)."""
    return ["action_checkbox", *admin_class.list_display].index(name)  # type: ignore[attr-defined]


def pages() -> list[tuple[str, str]]:
    from accounts.admin import UserAdmin
    from moderation.admin import ReviewQueueAdmin
    from polls.admin import PollAdmin

    users, polls = "/admin/accounts/user/", "/admin/polls/poll/"
    grants, reports = "/admin/polls/pollgrant/", "/admin/moderation/report/"
    queue = "/admin/moderation/reportedpoll/"
    return [
        ("users", users),
        ("users: page 50", f"{users}?p=50"),
        ("users: search 'user12345'", f"{users}?q=user12345"),
        ("users: search an email", f"{users}?q=user777777%40bench.test"),
        ("users: banned", f"{users}?is_active__exact=0"),
        ("users: staff", f"{users}?is_staff__exact=1"),
        ("users: moderators", f"{users}?moderator=yes"),
        ("users: by username", f"{users}?o={column(UserAdmin, 'username')}"),
        ("polls", polls),
        ("polls: by votes", f"{polls}?o=-{column(PollAdmin, 'total_votes')}"),
        ("polls: by creator (20,000 polls)", f"{polls}?creator=2"),
        ("polls: search a question", f"{polls}?q=Poll+123456"),
        ("polls: search a creator", f"{polls}?q=user98765"),
        ("polls: expired", f"{polls}?expired=yes"),
        ("polls: private", f"{polls}?poll_perms__exact=private"),
        ("polls: hidden", f"{polls}?hidden=yes"),
        ("grants", grants),
        ("grants: moderators", f"{grants}?role__exact=moderator"),
        ("grants: ended", f"{grants}?state=ended"),
        ("grants: everyone", f"{grants}?scope=everyone"),
        ("grants: of a poll", f"{grants}?poll=4242"),
        ("grants: of a user", f"{grants}?user=2"),
        ("grants: search", f"{grants}?q=user4242"),
        ("reports", reports),
        ("reports: open", f"{reports}?state=open"),
        ("reports: illegal", f"{reports}?reason__exact=illegal"),
        ("queue (newest report first)", queue),
        ("queue: most reported first", f"{queue}?o=-{column(ReviewQueueAdmin, 'open_reports')}"),
        ("queue: illegal", f"{queue}?reason=illegal"),
        ("queue: hidden", f"{queue}?hidden=yes"),
        ("a reported poll's page", f"{queue}{{reported_poll}}/change/"),
    ]


def _rows_shown(page: bytes) -> str:
    """How many rows a changelist page lists ("-" for other pages)."""
    if b'id="changelist"' not in page:
        return "-"
    table = re.search(rb'<table id="result_list">.*?<tbody>(.*?)</tbody>', page, re.S)
    return str(table.group(1).count(b"<tr")) if table else "0"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def web_pids(parent: int) -> list[int]:
    children = Path(f"/proc/{parent}/task/{parent}/children")
    found = [int(pid) for pid in children.read_text().split()] if children.exists() else []
    return [parent, *found]


def busiest_reported_poll() -> int:
    with psycopg.connect(DATABASE_URL) as conn:
        row = conn.execute(
            "SELECT poll_id FROM poll_report WHERE resolved_at IS NULL"
            " GROUP BY poll_id ORDER BY count(*) DESC LIMIT 1"
        ).fetchone()
    assert row is not None
    return int(row[0])


def table_sizes() -> dict[str, int]:
    with psycopg.connect(DATABASE_URL) as conn:
        return {
            table: int(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])  # type: ignore[index]  # noqa: S608
            for table in ("user", "poll", "vote_option", "vote", "poll_grant", "poll_report")
        }


def time_pages(repeat: int) -> list[str]:
    login = make_staff()
    reported_poll = busiest_reported_poll()
    env = {
        "DATABASE_URL": DATABASE_URL,
        "VALKEY_URL": PROFILE.valkey_url,
        "DJANGO_SETTINGS_MODULE": "feedapp.settings",
        "DJANGO_DEBUG": "false",
        # Plain http on 127.0.0.1: cookies must not be HTTPS-only for the client to send them.
        "AUTH_COOKIE_SECURE": "false",
        "LOG_LEVEL": "WARNING",
        "FEEDAPP_ENV_FILE": "/nonexistent",
    }
    server = start_uvicorn(env, 1, RESULTS_DIR / "admin_changelists.log")
    lines = []
    try:
        client = sign_in(server.url, login)
        pids = web_pids(server.proc.pid)
        for label, path in pages():
            url = path.format(reported_poll=reported_poll)
            warm_up = client.get(url)
            assert warm_up.status_code == 200, (label, warm_up.status_code)
            rows = _rows_shown(warm_up.content)
            times = []
            cpu_before = sum(cpu_seconds(pid) for pid in pids)
            for _ in range(repeat):
                began = time.perf_counter()
                response = client.get(url)
                assert response.status_code == 200, (label, response.status_code)
                times.append(time.perf_counter() - began)
            cpu = (sum(cpu_seconds(pid) for pid in pids) - cpu_before) / repeat
            line = (
                f"| {label} | {rows} | {statistics.median(times) * 1000:.0f} ms"
                f" | {max(times) * 1000:.0f} ms | {cpu * 1000:.0f} ms |"
            )
            print(line, flush=True)
            lines.append(line)
    finally:
        server.stop()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1_000_000, help="users to fill")
    parser.add_argument("--polls", type=int, default=200_000, help="polls to fill")
    parser.add_argument("--votes", type=int, default=1_000_000, help="votes to fill")
    parser.add_argument("--reports", type=int, default=100_000, help="reports to fill")
    parser.add_argument("--repeat", type=int, default=5, help="timed requests per page")
    parser.add_argument("--refill", action="store_true", help="drop the data and fill again")
    args = parser.parse_args()
    sizes = Sizes(args.users, args.polls, args.votes, args.reports)

    postgres.start(PROFILE)
    valkey.start(PROFILE)
    if args.refill or filled_sizes() != sizes.as_text():
        fill(sizes)
    else:
        migrate()
    print(f"tables: {table_sizes()}")
    print(f"machine: {machine()}")
    print("| page | rows shown | median | slowest | web CPU per request |")
    print("|---|---|---|---|---|")
    time_pages(args.repeat)


if __name__ == "__main__":
    main()
