"""The six fault drills of issue 11, each a script of faults played while voters vote.

Every drill: fresh topic and consumer group, users and polls of its own, the project's
processes as production runs them, a ledger of every request and answer, and at the end
`verify`. A drill passes when nothing differs, no answer was a 5xx other than 503, no
answer was unexpected, and every measured recovery is within its bound.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from accounts.auth import COOKIE_NAME
from accounts.tokens import issue_token
from bench.drills.ledger import Ledger
from bench.drills.load import (
    SETTLE_SECONDS,
    STREAM_ADDRESS_BASE,
    OffsetMonitor,
    StreamWatcher,
    VoteDriver,
    Voter,
    voter_address,
)
from bench.drills.verify import Findings, streams_settled, verify, wait_caught_up
from bench.drills.world import World
from stack import faults


@dataclass(frozen=True)
class Scale:
    users: int
    polls: int
    votes: int
    rate: float  # votes per second asked for (the pipeline saturates near 150/s here)
    streams: int = 5
    options: int = 4
    seconds: float = 600.0  # the load never runs longer
    # Drills of outages vote for `warmup` seconds before the first fault and `tail` seconds
    # after the last; `votes` then only caps the requests.
    warmup: float = 10.0
    tail: float = 10.0


@dataclass
class Measure:
    """One fault and what it cost: `seconds` against `bound` (None: no bound)."""

    what: str
    seconds: float | None
    bound: float | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.bound is None or (self.seconds is not None and self.seconds <= self.bound)


@dataclass
class Report:
    drill: str
    scale: Scale
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: int = 0
    unexpected_answers: int = 0
    caught_up: bool = False
    findings: Findings = field(default_factory=Findings)
    measures: list[Measure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        f = self.findings
        return (
            self.caught_up
            and self.server_errors == 0
            and self.unexpected_answers == 0
            and f.lost == f.unexpected == f.doubled == f.undercounted == 0
            and not f.differences
            and all(m.ok for m in self.measures)
        )

    def lines(self) -> list[str]:
        f = self.findings
        out = [
            f"drill {self.drill}: {'PASS' if self.ok else 'FAIL'} in {self.seconds:.0f} s "
            f"({self.scale.users} users, {self.scale.polls} polls, "
            f"{sum(self.statuses.values())} vote requests)",
            "statuses: "
            + ", ".join(f"{s or 'no answer'} x{n}" for s, n in sorted(self.statuses.items())),
            f"5xx other than 503: {self.server_errors}; unexpected answers: "
            f"{self.unexpected_answers}; caught up: {self.caught_up}",
            f"lost: {f.lost}, doubled: {f.doubled}, undercounted: {f.undercounted}, "
            f"votes never sent: {f.unexpected}",
        ]
        for m in self.measures:
            took = "never" if m.seconds is None else f"{m.seconds:.1f} s"
            bound = (
                "" if m.bound is None else f" (bound {m.bound:.0f} s: {'ok' if m.ok else 'MISSED'})"
            )
            out.append(f"{m.what}: {took}{bound}{'; ' + m.detail if m.detail else ''}")
        out += self.notes
        out += [f"difference: {d}" for d in f.differences]
        return out


@dataclass
class Run:
    """A drill in progress: what the fault scripts act on and measure."""

    world: World
    scale: Scale
    ledger: Ledger
    driver: VoteDriver
    monitor: OffsetMonitor
    watchers: list[StreamWatcher]
    report: Report
    outages: list[tuple[str, float, float, float]] = field(default_factory=list)

    async def after_votes(self, count: int) -> None:
        await self.driver.reached(count)

    async def after_load(self) -> None:
        await self.driver.reached(self.driver.votes)

    async def warm_up(self) -> None:
        await asyncio.sleep(self.scale.warmup)

    async def end_load(self) -> None:
        """Vote on for the tail, then stop the voters."""
        await asyncio.sleep(self.scale.tail)
        self.driver.finish()

    def measure(
        self, what: str, seconds: float | None, bound: float | None = None, detail: str = ""
    ) -> None:
        self.report.measures.append(Measure(what, seconds, bound, detail))

    def measure_outage(self, what: str, began: float, back: float, bound: float = 10) -> None:
        """Measured once the load is over: the first 201 after the service was back, and
        how the votes sent meanwhile were answered."""
        self.outages.append((what, began, back, bound))

    def measure_outages(self) -> None:
        for what, began, back, bound in self.outages:
            detail = f"away {back - began:.1f} s; " + self.refusals_during(began, back)
            self.measure(what, self.first_201_after(back), bound, detail)

    def first_201_after(self, moment: float) -> float | None:
        at = self.ledger.first_accepted_after(moment)
        return None if at is None else at - moment

    def refusals_during(self, start: float, end: float) -> str:
        """How quickly votes were refused while a service was away."""
        took = [
            e.answered_at - e.sent_at
            for e in self.ledger.entries
            if e.status == 503 and start <= e.sent_at <= end
        ]
        if not took:
            return "no 503"
        return (
            f"{len(took)} x 503, answered in p50 {statistics.median(took) * 1000:.0f} ms, "
            f"max {max(took):.1f} s"
        )


Script = Callable[[Run], Awaitable[None]]


async def run_drill(
    name: str, world: World, scale: Scale, script: Script, consumers: int = 1, webs: int = 1
) -> Report:
    """Set up, vote while `script` plays its faults, wait for the consumer, verify."""
    report = Report(name, scale)
    began = time.monotonic()
    world.log_dir.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(world.create_topic)
    try:
        users = await asyncio.to_thread(world.make_users, scale.users)
        for n in range(consumers):
            world.start_consumer(f"c{n + 1}")
        for n in range(webs):
            await asyncio.to_thread(world.start_web, "ab"[n])
        await _all_consuming(world)
        creator_cookie = f"{COOKIE_NAME}={issue_token(users[0])}"
        await world.make_polls(scale.polls, scale.options, creator_cookie)
        voters = [
            Voter(user_id, f"{COOKIE_NAME}={issue_token(user_id)}", voter_address(n))
            for n, user_id in enumerate(users)
        ]
        ledger = Ledger()
        driver = VoteDriver(world, voters, ledger, scale.votes, scale.rate, scale.seconds)
        monitor = OffsetMonitor(world, ledger)
        poll_ids = sorted(world.polls)
        watchers = [
            StreamWatcher(world, poll_ids[n % len(poll_ids)], f"{STREAM_ADDRESS_BASE}{1 + n}")
            for n in range(scale.streams)
        ]
        run = Run(world, scale, ledger, driver, monitor, watchers, report)
        watching = asyncio.Event()
        background = [asyncio.create_task(monitor.run(watching))] + [
            asyncio.create_task(w.run(watching)) for w in watchers
        ]
        try:
            await asyncio.gather(driver.run(), script(run))
            driver.finish()
            run.measure_outages()
            report.caught_up = await wait_caught_up(world, within=120)
            await streams_settled(watchers, world, within=15)
        finally:
            driver.finish()
            watching.set()
            await asyncio.gather(*background, return_exceptions=True)
        ledger.save(world.log_dir / "ledger.csv")
        report.statuses = ledger.statuses()
        report.server_errors = len(ledger.server_errors())
        report.unexpected_answers = len(ledger.unexpected())
        report.findings = await verify(world, ledger, watchers)
        opened = sum(w.opened for w in watchers)
        ended = sum(w.ended for w in watchers)
        refused = sum((w.refused for w in watchers), Counter())
        if watchers:
            report.notes.append(
                f"streams: {len(watchers)} watched, {opened} opened, {ended} ended by the "
                f"server, refused {dict(refused) or 'never'}"
            )
    finally:
        await asyncio.to_thread(world.stop_all)
        await asyncio.to_thread(world.delete_topic)
    report.seconds = time.monotonic() - began
    return report


async def _all_consuming(world: World, within: float = 120) -> None:
    """Wait until every consumer holds partitions (the faults begin from a steady state)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        held = [c.assignments()[-1][1] if c.assignments() else [] for c in world.consumers.values()]
        if all(held):
            return
        await asyncio.sleep(0.5)
    raise RuntimeError(f"the consumers did not all get partitions within {within:.0f} s")


# --- the drills ---------------------------------------------------------------------------


async def _kill(run: Run, name: str) -> float:
    consumer = run.world.consumers[name]
    consumer.proc.send_signal(signal.SIGKILL)
    await asyncio.to_thread(consumer.proc.wait)
    return run.ledger.now()


async def consumer_kills(run: Run, kills: int = 5) -> None:
    """1. The consumer SIGKILLed `kills` times during the votes, restarted at once each
    time: its partitions must be consumed again within 15 s."""
    every = run.scale.votes // (kills + 1)
    moments = []
    for n in range(kills):
        await run.after_votes(every * (n + 1))
        moments.append(await _kill(run, "c1"))
        run.world.start_consumer("c1")
    await run.after_load()
    await asyncio.sleep(1)
    end = run.ledger.now()
    for n, moment in enumerate(moments):
        until = moments[n + 1] if n + 1 < len(moments) else end
        seconds, partitions = run.monitor.resumed_after(moment, until)
        run.measure(
            f"kill {n + 1}: partitions consumed again after",
            seconds,
            15,
            f"{len(partitions)} partitions",
        )


async def kafka_outages(run: Run, seconds: float = 10.0) -> None:
    """2. Kafka stopped for `seconds`, later frozen (SIGSTOP) for `seconds`, while votes
    flow: 503s (soon at once), never 500, and 201s again within 10 s of its return."""
    await run.warm_up()
    began, back = await _restart(run, "kafka", seconds)
    run.measure_outage("Kafka stopped (then started): first 201 after it answered", began, back)
    await asyncio.sleep(run.scale.warmup)
    pid = faults.service_pid("kafka", run.world.profile)
    os.kill(pid, signal.SIGSTOP)
    began = run.ledger.now()
    try:
        await asyncio.sleep(seconds)
    finally:
        os.kill(pid, signal.SIGCONT)
    back = run.ledger.now()
    run.measure_outage("Kafka frozen (SIGSTOP): first 201 after SIGCONT", began, back)
    await run.end_load()


async def _restart(run: Run, service: str, down: float) -> tuple[float, float]:
    """Stop a service, wait `down` seconds, start it; when it began and when it was back
    (start-up included: a service is back when it answers)."""
    profile = run.world.profile
    began = run.ledger.now()
    await asyncio.to_thread(faults.SERVICES[service].stop, profile)
    await asyncio.sleep(down)
    await asyncio.to_thread(faults.SERVICES[service].start, profile)
    return began, run.ledger.now()


async def postgres_restarts(run: Run, down: float = 5.0) -> None:
    """3. PostgreSQL restarted during submissions, then again while the consumer catches up
    a backlog: 503 with Retry-After, never 500; the consumer resumes exactly."""
    await run.warm_up()
    began, back = await _restart(run, "postgres", down)
    run.measure_outage("PostgreSQL restarted under submissions: first 201 after", began, back)
    # A backlog: the consumer stops, the votes go on for a while, then end.
    await asyncio.sleep(run.scale.warmup)
    consumer = run.world.consumers["c1"]
    consumer.proc.send_signal(signal.SIGTERM)
    await asyncio.to_thread(consumer.proc.wait)
    await run.end_load()
    # Small batches, and the consumer held (SIGSTOP, well within its session) from the
    # moment it holds its partitions while PostgreSQL restarts: a backlog of a few thousand
    # votes is otherwise applied within a second, before a restart could catch it.
    consumer = run.world.start_consumer("c1", batch_size=10)
    while not consumer.assignments():  # noqa: ASYNC110 - another process's log
        await asyncio.sleep(0.02)
    os.kill(consumer.proc.pid, signal.SIGSTOP)
    try:
        # What it applied before it was held, committed by now and sampled since.
        await asyncio.sleep(SETTLE_SECONDS + 2 * run.monitor.interval)
        held = run.ledger.now()
        ends = await asyncio.to_thread(run.world.end_offsets)
        stored = run.monitor.stored_at(held)
        lag = sum(max(0, end - 1 - stored.get(p, -1)) for p, end in ends.items())
        began, back = await _restart(run, "postgres", down)
    finally:
        os.kill(consumer.proc.pid, signal.SIGCONT)
    # Compared with what it had applied when it was held: it may catch up within moments.
    seconds, _ = run.monitor.resumed_after(back, run.ledger.now() + 60, held)
    while seconds is None and run.ledger.now() - back < 30:
        await asyncio.sleep(0.2)
        seconds, _ = run.monitor.resumed_after(back, run.ledger.now(), held)
    run.measure(
        "PostgreSQL restarted during catch-up: consumer applying again after",
        seconds,
        15,
        f"{lag} records behind when it went down",
    )
    if lag == 0:
        run.report.notes.append("the consumer had caught up before PostgreSQL went down")
        run.measure("records behind when PostgreSQL went down", None, 0)


async def valkey_restart(run: Run, down: float = 5.0) -> None:
    """4. Valkey restarted while streams are open: streams stay open and end with the
    final counts; votes go on; the consumer resumes writing the cache."""
    await run.warm_up()
    began, back = await _restart(run, "valkey", down)
    run.measure_outage("Valkey restarted: first 201 after it was back", began, back)
    await run.end_load()


async def consumer_pair(run: Run, dead: float = 20.0) -> None:
    """5. Two consumers: one SIGKILLed (the other takes over within 15 s), restarted (joins
    within 10 s), then the other stopped with SIGTERM (hands over within 3 s)."""
    await run.warm_up()
    killed = await _kill(run, "c2")
    await asyncio.sleep(dead)
    seconds, partitions = run.monitor.resumed_after(killed, run.ledger.now())
    run.measure(
        "c2 SIGKILLed: its partitions consumed again (by c1) after",
        seconds,
        15,
        f"{len(partitions)} partitions",
    )
    restarted_wall = time.time()
    consumer = run.world.start_consumer("c2")
    ready = joined = None
    deadline = time.monotonic() + 30
    while joined is None and time.monotonic() < deadline:
        ready = consumer.ready_at()
        got = [at for at, parts in consumer.assignments() if parts]
        joined = (got[0] - ready) if got and ready else None
        await asyncio.sleep(0.2)
    started = f"process start to joining: {ready - restarted_wall:.1f} s" if ready else ""
    run.measure("c2 restarted: partitions assigned after it joined", joined, 10, started)
    await asyncio.sleep(5)
    stopping = run.ledger.now()
    c1 = run.world.consumers["c1"]
    c1.proc.send_signal(signal.SIGTERM)
    await asyncio.to_thread(c1.proc.wait)
    await asyncio.sleep(8)
    seconds, partitions = run.monitor.resumed_after(stopping, run.ledger.now())
    run.measure(
        "c1 SIGTERMed: all partitions consumed again (by c2) after",
        seconds,
        3,
        f"exit code {c1.proc.returncode}",
    )
    await run.end_load()


async def web_sigterm(run: Run) -> None:
    """6. One of two web processes SIGTERMed under load with streams open: it finishes what
    it has, its streams end cleanly and reconnect to the other; no 5xx."""
    await run.warm_up()
    web = run.world.webs["a"]
    began = run.ledger.now()
    os.killpg(web.proc.pid, signal.SIGTERM)
    code = await asyncio.to_thread(web.proc.wait)
    exited = run.ledger.now()
    run.measure("web a SIGTERMed: exited after", exited - began, 15, f"exit code {code}")
    await asyncio.sleep(run.scale.tail)
    answered = sorted(e.answered_at for e in run.ledger.entries if e.status == 201)
    gaps = [b - a for a, b in itertools.pairwise(answered) if began - 1 <= a <= exited + 5]
    run.measure("longest time without a 201 around it", max(gaps, default=None), 5)
    await asyncio.to_thread(run.world.start_web, "a")
    await run.end_load()


DRILLS: dict[str, tuple[Script, int, int]] = {
    # name: (script, consumers, web processes)
    "consumer-kill": (consumer_kills, 1, 1),
    "kafka": (kafka_outages, 1, 1),
    "postgres": (postgres_restarts, 1, 1),
    "valkey": (valkey_restart, 1, 1),
    "consumer-pair": (consumer_pair, 2, 1),
    "web-sigterm": (web_sigterm, 1, 2),
}

FULL_SCALE: dict[str, Scale] = {
    "consumer-kill": Scale(users=500, polls=20, votes=20_000, rate=200),
    "kafka": Scale(users=400, polls=20, votes=40_000, rate=150),
    "postgres": Scale(users=400, polls=20, votes=40_000, rate=150, warmup=15),
    "valkey": Scale(users=400, polls=20, votes=40_000, rate=150, streams=50),
    "consumer-pair": Scale(users=400, polls=20, votes=40_000, rate=150),
    "web-sigterm": Scale(users=400, polls=20, votes=40_000, rate=150, streams=20),
}
