"""What keeping each poll's total votes costs the vote consumer.

The consumer's version bump (db/queries/votes.sql: bump_versions) also sums the touched
polls' vote_count rows into poll_counts_version.total_votes, which the admin shows and
sorts by. This times that statement against the one without the total, and against
the same with an index on the total (which would make the admin's sort by votes
constant-time, and every bump a non-HOT update), each on 1,000 random polls per round,
interleaved in one run, after the polls' counts rows were updated in the same
transaction as the consumer does; every round is rolled back.

    python -m bench.total_votes_cost          # after python -m bench.admin_changelists
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from typing import LiteralString

from bench.admin_changelists import DATABASE_URL, filled_sizes
from db.sql import queries

WITHOUT_TOTAL: LiteralString = """
INSERT INTO poll_counts_version AS v (poll_id, version)
SELECT unnest(%(poll_ids)s::bigint[]), 1
ON CONFLICT (poll_id) DO UPDATE SET version = v.version + 1
"""
# What the consumer's counts update does to the touched polls' rows first.
TOUCH_COUNTS: LiteralString = (
    "UPDATE vote_count SET vote_count = vote_count + 1 WHERE poll_id = ANY(%(poll_ids)s::bigint[])"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30, help="rounds of the three variants")
    parser.add_argument("--polls", type=int, default=1000, help="polls touched per statement")
    args = parser.parse_args()
    if filled_sizes() is None:
        raise SystemExit("no data: run python -m bench.admin_changelists first")

    import psycopg

    variants: dict[str, tuple[LiteralString, bool]] = {
        "version only (before)": (WITHOUT_TOTAL, False),
        "version and total (now)": (queries("votes")["bump_versions"], False),
        "version and total, total indexed": (queries("votes")["bump_versions"], True),
    }
    rng = random.Random(7)
    times: dict[str, list[float]] = {name: [] for name in variants}
    with psycopg.connect(DATABASE_URL) as conn:
        total_polls = conn.execute("SELECT max(id) FROM poll").fetchone()[0]  # type: ignore[index]
        for _ in range(args.rounds):
            order = list(variants)
            rng.shuffle(order)
            for name in order:
                statement, with_index = variants[name]
                poll_ids = rng.sample(range(1, total_polls + 1), args.polls)
                if with_index:
                    conn.execute(
                        "CREATE INDEX total_votes_idx ON poll_counts_version (total_votes, poll_id)"
                    )
                conn.execute(TOUCH_COUNTS, {"poll_ids": poll_ids})
                began = time.perf_counter()
                conn.execute(statement, {"poll_ids": poll_ids})
                times[name].append(time.perf_counter() - began)
                conn.rollback()
    baseline = statistics.median(times["version only (before)"])
    print(f"| bump_versions for {args.polls:,} polls | median | vs before |")
    print("|---|---|---|")
    for name, measured in times.items():
        median = statistics.median(measured)
        print(f"| {name} | {median * 1000:.1f} ms | {median / baseline:.2f}x |")


if __name__ == "__main__":
    main()
