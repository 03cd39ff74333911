"""Vote consumer throughput: a pre-filled topic applied until the lag is zero.

    .venv/bin/python -m bench.consumer_throughput [--events 100000] [--polls 1000]
        [--users 10000] [--batch-size 2000]

Fills a fresh topic (12 partitions) with vote events over the given polls and users,
then starts ONE `manage.py consume_votes` process on it and measures, from the
process start until every event's offset is stored in PostgreSQL, the votes applied
per second. Then checks the counts: the sum over all options equals the number of
distinct (poll, user) pairs voted.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import time
import uuid

import psycopg
from django.conf import settings
from kafka import KafkaProducer

from bench.common import machine
from bench.setup import (
    PROFILE,
    git_revision,
    load_average,
    make_dataset,
    now,
    prepare_stack,
)
from stack.processes import consume_votes_command
from stack.profiles import PROJECT_ROOT
from votes import broker
from votes.messages import VoteEvent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--polls", type=int, default=1_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=2_000)
    parser.add_argument("--partitions", type=int, default=12)
    args = parser.parse_args()

    prepare_stack()
    data = make_dataset(args.users, args.polls)
    topic = f"bench-votes-{uuid.uuid4().hex[:8]}"
    group = f"bench-{uuid.uuid4().hex[:8]}"
    broker.ensure_topic(topic, args.partitions, 1)

    rng = random.Random(42)
    producer = KafkaProducer(
        bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
        acks="all",
        linger_ms=20,
        batch_size=256 * 1024,
    )
    voted: set[tuple[int, int]] = set()
    began = time.monotonic()
    for _ in range(args.events):
        poll_id, options = rng.choice(data.polls)
        user_id = rng.choice(data.user_ids)
        voted.add((poll_id, user_id))
        event = VoteEvent.new(user_id, poll_id, rng.choice(options))
        producer.send(topic, key=event.key(), value=event.encode())
    producer.flush()
    producer.close()
    print(f"produced {args.events} events in {time.monotonic() - began:.1f} s", flush=True)

    env = {**os.environ, "LOG_LEVEL": "INFO"}
    log_path = PROFILE.data_dir / "consumer-bench.log"
    with log_path.open("wb") as log:
        started = time.monotonic()
        proc = subprocess.Popen(
            consume_votes_command(topic, group, args.batch_size, stats_interval=5),
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            with psycopg.connect(settings.DATABASE_URL, autocommit=True) as conn:
                done, first = 0, 0.0
                while done < args.events:
                    if proc.poll() is not None:
                        raise SystemExit(f"consumer exited early; see {log_path}")
                    time.sleep(0.1)
                    done = _scalar(
                        conn,
                        "SELECT coalesce(sum(last_offset + 1), 0) FROM consumer_offset "
                        "WHERE consumer_group = %s AND topic = %s",
                        (group, topic),
                    )
                    if done and not first:
                        first, first_done = time.monotonic(), done
                elapsed = time.monotonic() - started
                total = _scalar(
                    conn,
                    "SELECT sum(vote_count) FROM vote_count WHERE poll_id = ANY(%s)",
                    ([p for p, _ in data.polls],),
                )
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    assert total == len(voted), f"counts {total} != distinct votes {len(voted)}"
    print(
        f"date: {now()}; machine: {machine()}; revision {git_revision()}; "
        f"load before: {load_average()}"
    )
    print(
        f"applied {args.events} events ({len(voted)} distinct votes, {args.polls} polls, "
        f"{args.users} users) in {elapsed:.1f} s from consumer start: "
        f"{args.events / elapsed:,.0f} events/s; counts verified"
    )
    steady = (args.events - first_done) / (started + elapsed - first)
    print(f"from the first applied batch on (start-up excluded): {steady:,.0f} events/s")


def _scalar(conn: psycopg.Connection, query: str, params: tuple[object, ...]) -> int:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return int(row[0])


if __name__ == "__main__":
    main()
