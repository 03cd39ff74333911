"""Vote consumer throughput: a pre-filled topic applied until the lag is zero.

    .venv/bin/python -m bench.consumer_throughput [--events 100000] [--polls 1000]
        [--users 10000] [--batch-size 2000]

Fills a fresh topic (12 partitions) with vote events over the given polls and users,
then starts ONE `manage.py consume_votes` process on it and measures, from the
process start until every event's offset is stored in PostgreSQL, the votes applied
per second. Then checks the counts: the sum over all options equals the number of
distinct (poll, user) pairs voted.

Besides the rates (which depend on how busy the machine is), it prints the start-up
time, the consumer's own CPU per event once the first batch is applied (from /proc:
what one consumer would reach with a core of its own is 1 / that), and the CPU the
stack's PostgreSQL, Valkey and Kafka used per event. --py-spy FILE samples the consumer
and prints where its time goes.

--baseline CHECKOUT runs another source tree's consumer (another revision) too, in
--rounds alternated runs (this, baseline; then baseline, this; ...), each on a dataset
and topic of its own, and prints every run's figures and their medians: on a shared
machine only runs made side by side compare. Both run on this checkout's schema.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
from django.conf import settings
from kafka import KafkaProducer

from bench.common import cpu_seconds, machine, stack_pids, tree_cpu_seconds
from bench.cpu_per_request import summarize_stacks
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
    parser.add_argument(
        "--events", type=int, default=100_000, help="vote events to produce and apply"
    )
    parser.add_argument("--polls", type=int, default=1_000, help="polls the votes spread over")
    parser.add_argument("--users", type=int, default=10_000, help="users who vote")
    parser.add_argument(
        "--batch-size", type=int, default=2_000, help="the consumer's records per batch"
    )
    parser.add_argument("--partitions", type=int, default=12, help="partitions of the run's topic")
    parser.add_argument("--py-spy", metavar="FILE", help="sample the consumer, stacks to FILE")
    parser.add_argument(
        "--baseline",
        metavar="CHECKOUT",
        help="also run this source tree's consumer (another revision), alternating with this "
        "one in --rounds runs each",
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternations with --baseline")
    args = parser.parse_args()

    prepare_stack()
    if not args.baseline:
        run_once(args, PROJECT_ROOT, args.py_spy)
        return
    runs: dict[str, list[Run]] = {"this": [], "baseline": []}
    checkouts = {"this": PROJECT_ROOT, "baseline": Path(args.baseline).resolve()}
    for round_ in range(args.rounds):
        order = ["this", "baseline"] if round_ % 2 == 0 else ["baseline", "this"]
        for name in order:
            print(f"\n--- round {round_ + 1}: {name} ({checkouts[name]})", flush=True)
            runs[name].append(run_once(args, checkouts[name], None))
    print("\nmedians (steady events/s, consumer and PostgreSQL CPU per event, start-up):")
    for name, measured in runs.items():
        print(
            f"  {name:8} {statistics.median(r.steady for r in measured):8,.0f} events/s, "
            f"consumer {statistics.median(r.consumer_us for r in measured):.1f} us, "
            f"postgresql {statistics.median(r.postgresql_us for r in measured):.1f} us, "
            f"start-up {statistics.median(r.start_up for r in measured):.2f} s; runs: "
            + ", ".join(f"{r.steady:,.0f} (load {r.load})" for r in measured)
        )


@dataclass(frozen=True)
class Run:
    steady: float  # events/s from the first applied batch on
    start_up: float  # seconds from process start to the first applied batch
    consumer_us: float  # the consumer's CPU per event from the first applied batch on
    postgresql_us: float  # PostgreSQL's CPU per event over the whole run
    load: str  # the 1-minute load average before the run


def run_once(args: argparse.Namespace, checkout: Path, py_spy: str | None) -> Run:
    """Fill a fresh topic, run `checkout`'s consumer on it until every offset is stored,
    check the counts and print the figures."""
    load_before = load_average()
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
    stores = stack_pids(PROFILE.name)
    stores_before = {name: tree_cpu_seconds(pid) for name, pid in stores.items()}
    with log_path.open("wb") as log:
        started = time.monotonic()
        proc = subprocess.Popen(
            consume_votes_command(
                topic, group, args.batch_size, stats_interval=5, checkout=checkout
            ),
            cwd=checkout,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        spy = _py_spy(proc.pid, py_spy) if py_spy else None
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
                        cpu_at_first = cpu_seconds([proc.pid])
                elapsed = time.monotonic() - started
                cpu_at_end = cpu_seconds([proc.pid])
                stores_used = {
                    name: tree_cpu_seconds(stores[name]) - before
                    for name, before in stores_before.items()
                }
                total = _scalar(
                    conn,
                    "SELECT sum(vote_count) FROM vote_count WHERE poll_id = ANY(%s)",
                    ([p for p, _ in data.polls],),
                )
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            if spy is not None:
                spy.wait(timeout=60)
    assert total == len(voted), f"counts {total} != distinct votes {len(voted)}"
    print(
        f"date: {now()}; machine: {machine()}; revision {git_revision(checkout)}; "
        f"load before: {load_before}"
    )
    print(
        f"applied {args.events} events ({len(voted)} distinct votes, {args.polls} polls, "
        f"{args.users} users) in {elapsed:.1f} s from consumer start: "
        f"{args.events / elapsed:,.0f} events/s; counts verified"
    )
    steady_events = args.events - first_done
    steady = steady_events / (started + elapsed - first)
    print(f"start-up (process start to the first applied batch): {first - started:.2f} s")
    print(f"from the first applied batch on (start-up excluded): {steady:,.0f} events/s")
    steady_cpu = cpu_at_end - cpu_at_first
    print(
        f"consumer CPU: {cpu_at_first:.2f} s to the first batch, then {steady_cpu:.2f} s for "
        f"{steady_events} events = {1e6 * steady_cpu / max(steady_events, 1):.1f} us per event "
        f"({steady_events / max(steady_cpu, 1e-9):,.0f} events per CPU second)"
    )
    print(
        "stores' CPU over the whole run, per event: "
        + ", ".join(
            f"{name} {1e6 * used / args.events:.1f} us" for name, used in stores_used.items()
        )
    )
    if py_spy:
        print(f"\npy-spy of the consumer ({py_spy}):")
        print("\n".join(summarize_stacks([Path(py_spy)], top=40)))
    return Run(
        steady,
        first - started,
        1e6 * steady_cpu / max(steady_events, 1),
        1e6 * stores_used.get("postgresql", 0.0) / args.events,
        load_before.split()[0],
    )


def _py_spy(pid: int, out: str) -> subprocess.Popen[bytes]:
    """py-spy sampling the consumer until it exits, its stacks written to `out`."""
    py_spy = Path(sys.executable).parent / "py-spy"
    command = [str(py_spy), "record", "--pid", str(pid), "--rate", "200", "--format", "raw"]
    command += ["--nonblocking", "--output", out]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def _scalar(conn: psycopg.Connection, query: str, params: tuple[object, ...]) -> int:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return int(row[0])


if __name__ == "__main__":
    main()
