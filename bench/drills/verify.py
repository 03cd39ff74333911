"""The end of every drill: once the consumer has applied everything, the ledger, the
`vote` table, `vote_count`, GET /api/vote/{id}, Valkey and the last event of the open
streams must all tell the same story."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field

import psycopg
import valkey

from bench.drills.http import HttpConnection
from bench.drills.ledger import Ledger
from bench.drills.load import StreamWatcher, live_webs
from bench.drills.world import World


@dataclass
class Findings:
    lost: int = 0  # a 201 whose vote is not the final one (nor superseded by an uncertain one)
    unexpected: int = 0  # a final vote no request of that user ever asked for
    doubled: int = 0  # counted more often than the vote table holds
    undercounted: int = 0
    differences: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if len(self.differences) < 30:
            self.differences.append(text)


@dataclass(frozen=True)
class PollState:
    version: int
    counts: list[dict[str, int]]  # the API's shape, presentation order


async def wait_caught_up(world: World, within: float) -> bool:
    """Wait until the consumer stored every partition's last offset in PostgreSQL."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            ends = await asyncio.to_thread(world.end_offsets)
            with psycopg.connect(world.database_url, connect_timeout=3) as conn:
                stored: dict[int, int] = dict(
                    conn.execute(
                        "SELECT partition, last_offset FROM consumer_offset "
                        "WHERE consumer_group = %s AND topic = %s",
                        (world.group, world.topic),
                    ).fetchall()
                )
            if all(stored.get(p, -1) >= end - 1 for p, end in ends.items()):
                return True
        except Exception as exc:
            print(f"waiting for the consumer: {exc!r}", flush=True)
        await asyncio.sleep(0.5)
    return False


def poll_states(conn: psycopg.Connection, poll_ids: list[int]) -> dict[int, PollState]:
    rows = conn.execute(
        "SELECT o.poll_id, coalesce(v.version, 0), "
        "json_agg(json_build_object('vote_option_id', o.id, "
        "'vote_count', coalesce(c.vote_count, 0)) ORDER BY o.position) "
        "FROM vote_option o LEFT JOIN vote_count c ON c.vote_option_id = o.id "
        "LEFT JOIN poll_counts_version v ON v.poll_id = o.poll_id "
        "WHERE o.poll_id = ANY(%s) GROUP BY o.poll_id, v.version",
        (poll_ids,),
    ).fetchall()
    return {poll_id: PollState(version, counts) for poll_id, version, counts in rows}


async def verify(world: World, ledger: Ledger, watchers: list[StreamWatcher]) -> Findings:
    found = Findings()
    poll_ids = sorted(world.polls)
    with psycopg.connect(world.database_url) as conn, conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        votes = {
            (user_id, poll_id): option_id
            for poll_id, user_id, option_id in conn.execute(
                "SELECT poll_id, user_id, vote_option_id FROM vote WHERE poll_id = ANY(%s)",
                (poll_ids,),
            ).fetchall()
        }
        states = poll_states(conn, poll_ids)

    # The ledger against the vote table.
    allowed, confirmed = ledger.allowed_votes(), ledger.confirmed()
    for key in sorted(set(allowed) | set(votes)):
        final = votes.get(key)
        if final in allowed.get(key, {None}):
            continue
        if key in confirmed:
            found.lost += 1
            found.note(f"user {key[0]} poll {key[1]}: 201 for {confirmed[key]}, table has {final}")
        else:
            found.unexpected += 1
            found.note(f"user {key[0]} poll {key[1]}: table has {final}, never confirmed")

    # vote_count against the vote table (exact deltas: a doubled vote shows here).
    rows = Counter(option for option in votes.values())
    for poll_id, state in states.items():
        for item in state.counts:
            option, counted = item["vote_option_id"], item["vote_count"]
            if counted > rows[option]:
                found.doubled += counted - rows[option]
                found.note(f"poll {poll_id} option {option}: count {counted}, {rows[option]} votes")
            elif counted < rows[option]:
                found.undercounted += rows[option] - counted
                found.note(f"poll {poll_id} option {option}: count {counted}, {rows[option]} votes")

    # What readers see: the API, the cache, the streams.
    webs = live_webs(world)
    if webs:
        client = HttpConnection(webs[0][1].port)
        for poll_id in poll_ids:
            answer = await client.request("GET", f"/api/vote/{poll_id}")
            if answer.status != 200 or answer.json() != states[poll_id].counts:
                found.note(f"GET /api/vote/{poll_id}: {answer.status} {answer.body[:200]!r}")
        await client.close()
    else:
        found.note("no web process left to ask")
    cache = valkey.Valkey.from_url(world.profile.valkey_url, socket_timeout=5)
    try:
        for poll_id in poll_ids:
            version, data = cache.hmget(  # type: ignore[misc]
                f"counts:poll:{poll_id}", ["version", "counts"]
            )
            if version is None:
                continue  # a cache may miss
            if int(version) != states[poll_id].version or json.loads(data) != (
                states[poll_id].counts
            ):
                found.note(f"Valkey poll {poll_id}: version {int(version)}, {data[:200]!r}")
    finally:
        cache.close()
    for watcher in watchers:
        last = watcher.last()
        state = states[watcher.poll_id]
        if last is None:
            found.note(f"stream of poll {watcher.poll_id}: no event")
        elif last[0] != state.version or json.loads(last[1]) != state.counts:
            found.note(
                f"stream of poll {watcher.poll_id}: last event {last[0]} {last[1][:200]!r}, "
                f"PostgreSQL has {state.version}"
            )
    return found


async def streams_settled(watchers: list[StreamWatcher], world: World, within: float) -> None:
    """Give the streams time to receive the final counts (they come after the commit)."""
    with psycopg.connect(world.database_url) as conn:
        states = poll_states(conn, sorted({w.poll_id for w in watchers}))
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if all((w.last() or (None,))[0] == states[w.poll_id].version for w in watchers):
            return
        await asyncio.sleep(0.2)
