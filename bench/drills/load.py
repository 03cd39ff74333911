"""What a drill drives and watches: voters submitting votes over HTTP (each a user of its
own, spread over many loopback source addresses), live streams that reconnect like a
browser's EventSource, and the consumer's progress as stored in PostgreSQL."""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import psycopg

from bench.common import SseClient, stream_request
from bench.drills.http import HttpConnection
from bench.drills.ledger import Ledger
from bench.drills.world import World
from stack.processes import WebServer

# Loopback has a whole /8: voters and streams come from many source addresses.
VOTER_ADDRESSES = 50
STREAM_ADDRESS_BASE = "127.0.1."
# How long after a fault a transaction begun before it can still commit.
SETTLE_SECONDS = 0.5
# Records produced this long after a consumer stopped count as waiting for it.
PENDING_SECONDS = 2.0


def voter_address(index: int) -> str:
    return f"127.0.0.{2 + index % VOTER_ADDRESSES}"


@dataclass(frozen=True)
class Voter:
    user_id: int
    cookie: str
    source: str


class Pacer:
    """Spreads requests evenly at `rate` per second across all voters."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self.next = time.monotonic()

    async def wait(self) -> None:
        now = time.monotonic()
        slot = max(now, self.next)
        self.next = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


def live_webs(world: World) -> list[tuple[str, WebServer]]:
    """(name, server) of the web processes still running."""
    return [(name, web) for name, web in world.webs.items() if web.proc.poll() is None]


@dataclass
class VoteDriver:
    """Voters vote at random on the drill's polls until `votes` requests were sent (or
    `seconds` passed). Each voter sends one request at a time; a 503 or a lost answer is
    sent once more after Retry-After, as a well-behaved client would; 429 is waited out."""

    world: World
    voters: list[Voter]
    ledger: Ledger
    votes: int
    rate: float
    seconds: float = 600.0
    seed: int = 7
    sent: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    _milestones: list[tuple[int, asyncio.Event]] = field(default_factory=list)

    async def reached(self, count: int) -> None:
        """Return once `count` requests were sent, or the load ended."""
        if self.sent >= count or self.stop.is_set():
            return
        event = asyncio.Event()
        self._milestones.append((count, event))
        await event.wait()

    def _count_sent(self) -> None:
        self.sent += 1
        for count, event in self._milestones:
            if self.sent >= count:
                event.set()

    def finish(self) -> None:
        self.stop.set()
        for _, event in self._milestones:
            event.set()

    async def run(self) -> None:
        pacer = Pacer(self.rate)
        deadline = time.monotonic() + self.seconds
        rng = random.Random(self.seed)
        polls = sorted(self.world.polls.items())
        try:
            await asyncio.gather(
                *(
                    self._voter(voter, pacer, deadline, random.Random(rng.random()), polls)
                    for voter in self.voters
                )
            )
        finally:
            self.finish()

    def _more(self, deadline: float) -> bool:
        return self.sent < self.votes and time.monotonic() < deadline and not self.stop.is_set()

    async def _voter(
        self,
        voter: Voter,
        pacer: Pacer,
        deadline: float,
        rng: random.Random,
        polls: list[tuple[int, list[int]]],
    ) -> None:
        connections: dict[str, HttpConnection] = {}
        try:
            while self._more(deadline):
                poll_id, options = rng.choice(polls)
                option_id = rng.choice(options)
                resend = True
                while self._more(deadline):
                    await pacer.wait()
                    if not self._more(deadline):
                        break
                    webs = live_webs(self.world)
                    if not webs:
                        await asyncio.sleep(0.2)
                        continue
                    name, web = webs[voter.user_id % len(webs)]
                    connection = connections.get(name)
                    if connection is None or connection.port != web.port:
                        connection = connections[name] = HttpConnection(web.port, voter.source)
                    self._count_sent()
                    sent_at = self.ledger.now()
                    answer = await connection.request(
                        "POST",
                        "/api/vote/submit",
                        {"poll_id": poll_id, "vote_option_id": option_id},
                        voter.cookie,
                    )
                    self.ledger.record(
                        voter.user_id, poll_id, option_id, answer.status, sent_at, name
                    )
                    if answer.status == 429:
                        await asyncio.sleep(min(answer.retry_after, 2.0))
                        continue
                    if answer.status in (0, 503) and resend:
                        resend = False
                        await asyncio.sleep(min(answer.retry_after, 2.0) if answer.status else 0.2)
                        continue
                    if answer.status in (0, 503):
                        await asyncio.sleep(min(answer.retry_after, 2.0) if answer.status else 0.2)
                    break
        finally:
            for connection in connections.values():
                await connection.close()


@dataclass
class StreamWatcher:
    """One live stream of one poll, reopened after it ends (on any live web process)."""

    world: World
    poll_id: int
    source: str
    events: list[tuple[int, bytes]] = field(default_factory=list)  # (version, data)
    opened: int = 0
    ended: int = 0
    refused: Counter[int] = field(default_factory=Counter)

    def last(self) -> tuple[int, bytes] | None:
        return max(self.events, default=None)

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            webs = live_webs(self.world)
            if not webs:
                await asyncio.sleep(0.2)
                continue
            _, web = webs[self.poll_id % len(webs)]
            client = SseClient(stream_request(self.poll_id), loop.create_future(), record_data=True)
            try:
                await loop.create_connection(
                    functools.partial(lambda c: c, client),
                    "127.0.0.1",
                    web.port,
                    local_addr=(self.source, 0),
                )
            except OSError:
                await asyncio.sleep(0.5)
                continue
            assert client.connected is not None
            try:
                status = await asyncio.wait_for(asyncio.shield(client.connected), 10)
            except TimeoutError:
                status = client.status or -1
            if status != 200:
                self.refused[status] += 1
                if client.transport is not None:
                    client.transport.close()
                await asyncio.sleep(1.0)
                continue
            self.opened += 1
            while not client.closed and not stop.is_set():
                self.events.extend((v, data) for v, _, data in client.seen)
                client.seen.clear()
                await asyncio.sleep(0.1)
            self.events.extend((v, data) for v, _, data in client.seen)
            if client.transport is not None and not client.closed:
                client.transport.close()
            elif status == 200:
                self.ended += 1
                await asyncio.sleep(0.5)  # EventSource's reconnection delay


@dataclass
class OffsetMonitor:
    """Samples the consumer's stored offsets (PostgreSQL's truth) a few times a second."""

    world: World
    ledger: Ledger
    interval: float = 0.2
    samples: list[tuple[float, dict[int, int]]] = field(default_factory=list)
    end_samples: list[tuple[float, dict[int, int]]] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        ends = asyncio.create_task(self._sample_ends(stop))
        try:
            await self._sample_stored(stop)
        finally:
            await ends

    async def _sample_ends(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                at = self.ledger.now()
                self.end_samples.append((at, await asyncio.to_thread(self.world.end_offsets)))
            except Exception:  # noqa: S110 - Kafka may be the service that is down
                pass
            await asyncio.sleep(1.0)

    async def _sample_stored(self, stop: asyncio.Event) -> None:
        conn: psycopg.AsyncConnection | None = None
        while not stop.is_set():
            try:
                if conn is None or conn.closed:
                    conn = await psycopg.AsyncConnection.connect(
                        self.world.database_url, autocommit=True, connect_timeout=2
                    )
                cur = await conn.execute(
                    "SELECT partition, last_offset FROM consumer_offset "
                    "WHERE consumer_group = %s AND topic = %s",
                    (self.world.group, self.world.topic),
                )
                self.samples.append((self.ledger.now(), dict(await cur.fetchall())))
            except psycopg.Error:
                if conn is not None:
                    await conn.close()
                conn = None
            await asyncio.sleep(self.interval)
        if conn is not None:
            await conn.close()

    def stored_at(self, moment: float) -> dict[int, int]:
        before = [offsets for at, offsets in self.samples if at <= moment]
        return before[-1] if before else {}

    def resumed_after(
        self, moment: float, until: float, baseline_at: float | None = None
    ) -> tuple[float | None, list[int]]:
        """How long after `moment` every partition that had records waiting was applied
        again (None: some was not before `until`), and those partitions.

        The applied offsets compared with are those sampled at `baseline_at`; by default a
        moment after `moment`, since a transaction the stopped consumer committed just
        before it can show in a later sample. A consumer held still since before `moment`
        passes a time after it was held instead: it may be applying again within that
        moment, and would then seem never to have been behind."""
        if baseline_at is None:
            baseline_at = moment + SETTLE_SECONDS
        start = self.stored_at(baseline_at)
        ends = self.ends_at(moment + PENDING_SECONDS)
        waiting = sorted(p for p, end in ends.items() if end - 1 > start.get(p, -1))
        if not waiting:
            return None, []
        latest = 0.0
        for partition in waiting:
            first = next(
                (
                    at
                    for at, offsets in self.samples
                    if max(moment, baseline_at) < at <= until
                    and offsets.get(partition, -1) > start.get(partition, -1)
                ),
                None,
            )
            if first is None:
                return None, waiting
            latest = max(latest, first - moment)
        return latest, waiting

    def ends_at(self, moment: float) -> dict[int, int]:
        """The topic's end offsets as first sampled at or after `moment`."""
        after = [ends for at, ends in self.end_samples if at >= moment]
        return after[0] if after else (self.end_samples[-1][1] if self.end_samples else {})

    def last_advance(self) -> float:
        """When the stored offsets last changed."""
        last, previous = 0.0, None
        for at, offsets in self.samples:
            if offsets != previous:
                last, previous = at, offsets
        return last
