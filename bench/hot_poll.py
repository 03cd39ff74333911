"""A hot poll: N streams on ONE poll of one web process while votes pour in for it.

    .venv/bin/python -m bench.hot_poll --streams 10000 --rate 300 --seconds 60

Starts uvicorn (one worker) and the vote consumer (a topic of the run's own) against the
`bench` stack. Client processes open the streams (raw sockets; each keeps only the
versions it saw, when, and its last event's data). Then votes arrive for the poll at
--rate per second, open loop, through POST /api/vote/submit of the same web process
(voters move their vote between the poll's options, so nearly every vote changes the
counts). When they stop and the consumer has applied everything, the script checks that
every stream's last event carries the final counts (read from PostgreSQL).

Staleness: the script also subscribes to the poll's Valkey channel, where the consumer
publishes each counts version right after its transaction committed; for every version
V published at t(V) and every stream, staleness is the time from t(V) until the stream
showed V or a later version. Updates that come faster than a stream can be written are
coalesced (each stream's mailbox keeps only the newest), so a stream skips versions but
never falls behind by more than the time it takes to write to all the streams once.

Reported: staleness percentiles over all (version, stream) pairs, versions published and
versions each stream received, the web process's CPU (per second and per vote) and
memory, and the final check. Targets (issue 15): every stream ends on the final counts;
staleness p99 <= 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import threading
import time
import uuid
from array import array
from bisect import bisect_left
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from bench.common import (
    RESULTS_DIR,
    SseProtocol,
    add_checkout_option,
    cpu_seconds,
    fork_stream_clients,
    machine,
    make_user,
    process_tree,
    rss_kib,
    setup_django,
    signing_keys,
    stack_env,
    start_uvicorn,
    stream_request,
)
from stack.processes import consume_votes_command

_EVENT = re.compile(rb"id: (\d+)\ndata: ([^\n]*)\n\n")
# Staleness histogram: 1 ms buckets up to 60 s.
BUCKETS = 60_000


@dataclass(eq=False)
class Stream(SseProtocol):
    """The versions one stream saw and when (compact arrays: 10,000 of them in one client
    process), and its last event's data."""

    versions: array = field(default_factory=lambda: array("q"))
    times: array = field(default_factory=lambda: array("d"))
    last_data: bytes = b""

    def take_events(self, complete: bytes, now: float) -> bool:
        for match in _EVENT.finditer(complete):
            self.versions.append(int(match.group(1)))
            self.times.append(now)
            self.last_data = match.group(2)
        return bool(self.versions)


def client_process(pipe: Connection, count: int, in_flight: int) -> None:
    """Open `count` streams; on request, report staleness and the streams' last events."""
    import uvloop

    port, poll_id = pipe.recv()

    async def run() -> None:
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(in_flight)
        streams: list[Stream] = []

        async def one() -> None:
            # A server busy opening thousands of streams may answer 503 (no database
            # connection within its timeout): opening is not what is measured, so retry.
            for attempt in range(10):
                async with gate:
                    stream = Stream(stream_request(poll_id), loop.create_future())
                    transport, _ = await loop.create_connection(
                        lambda stream=stream: stream,  # type: ignore[misc]
                        "127.0.0.1",
                        port,
                    )
                    assert stream.connected is not None
                    if await stream.connected == 200:
                        streams.append(stream)
                        return
                    transport.close()
                await asyncio.sleep(0.5 * (attempt + 1))
            raise RuntimeError(f"stream answered {stream.status}")

        began = time.monotonic()
        await asyncio.gather(*(one() for _ in range(count)))
        pipe.send(("ready", time.monotonic() - began))
        published: list[tuple[int, float]] = await loop.run_in_executor(None, pipe.recv)
        pipe.send(("report", *staleness(streams, published)))
        for stream in streams:
            if stream.transport is not None:
                stream.transport.close()

    uvloop.run(run())


def staleness(
    streams: list[Stream], published: list[tuple[int, float]]
) -> tuple[list[int], list[int], list[bytes], int, int]:
    """Per (published version, stream): ms until the stream showed that version or a
    later one (histogram; never shown: counted apart). Also each stream's number of
    events, its last event's data, how many streams were closed, and pairs never shown."""
    histogram = [0] * (BUCKETS + 1)
    never = 0
    for stream in streams:
        versions, times = stream.versions, stream.times
        for version, at in published:
            index = bisect_left(versions, version)
            if index == len(versions):
                never += 1
                continue
            ms = int((times[index] - at) * 1000)
            histogram[min(max(ms, 0), BUCKETS)] += 1
    events = [len(stream.versions) for stream in streams]
    last = [stream.last_data for stream in streams]
    closed = sum(stream.closed for stream in streams)
    return histogram, events, last, closed, never


def percentile_ms(histogram: list[int], fraction: float) -> int:
    total = sum(histogram)
    wanted, seen = fraction * total, 0
    for ms, count in enumerate(histogram):
        seen += count
        if seen >= wanted:
            return ms
    return len(histogram) - 1


class Publications:
    """Every counts version published on the poll's channel, with when it was seen."""

    def __init__(self, channel: str) -> None:
        from db.valkey import get_sync_valkey

        self.seen: list[tuple[int, float]] = []
        self._pubsub = get_sync_valkey().pubsub()
        self._pubsub.subscribe(channel)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self._pubsub.get_message(timeout=0.2)
            if message and message["type"] == "message":
                body = json.loads(message["data"])
                if body.get("type") == "vote_update":
                    self.seen.append((int(body["version"]), time.time()))

    def stop(self) -> list[tuple[int, float]]:
        self._stop.set()
        self._thread.join(timeout=5)
        self._pubsub.close()
        return self.seen


async def prepare(voters: int) -> tuple[Any, list[str]]:
    from accounts.auth import COOKIE_NAME
    from accounts.tokens import issue_token
    from polls.services import do_create_poll

    creator = await make_user("hot")
    poll = await do_create_poll(creator, "Hot poll?", ["a", "b", "c"], "public_vote", None)
    users = [await make_user("hotvoter") for _ in range(voters)]
    return poll, [f"{COOKIE_NAME}={issue_token(user.id)}" for user in users]


async def vote_load(
    port: int, poll: Any, cookies: list[str], rate: float, seconds: float, in_flight: int
) -> tuple[int, int, float]:
    """Votes at `rate`/s, open loop; each voter takes the next option each time."""
    total = int(rate * seconds)
    queue: asyncio.Queue[int | None] = asyncio.Queue()
    sent = refused = 0
    latencies: list[float] = []
    began = time.monotonic()

    async def schedule() -> None:
        for n in range(total):
            delay = began + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            queue.put_nowait(n)
        for _ in range(in_flight):
            queue.put_nowait(None)

    async def sender() -> None:
        nonlocal sent, refused
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while (n := await queue.get()) is not None:
            if time.monotonic() > began + seconds + 5:
                break  # a server that fell behind: what is still queued is not sent
            voter, turn = n % len(cookies), n // len(cookies)
            option = poll.option_ids[(voter + turn) % len(poll.option_ids)]
            body = json.dumps({"poll_id": poll.id, "vote_option_id": option}).encode()
            at = time.monotonic()
            writer.write(
                b"POST /api/vote/submit HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nCookie: " + cookies[voter].encode() + b"\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
            await reader.readexactly(length)
            latencies.append(time.monotonic() - at)
            sent += 1
            refused += int(head.split(b" ", 2)[1]) != 201
        writer.close()

    await asyncio.gather(schedule(), *(sender() for _ in range(in_flight)))
    if sent < total:
        print(f"{total - sent} votes were not sent: the server fell behind", flush=True)
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99)] if latencies else 0.0
    print(
        f"POST /api/vote/submit: p50 {1000 * latencies[len(latencies) // 2]:.0f} ms, "
        f"p99 {1000 * p99:.0f} ms",
        flush=True,
    )
    return sent, refused, time.monotonic() - began


def counts_now(database_url: str, poll_id: int) -> Any:
    """The poll's counts in PostgreSQL (a plain connection: no event loop, no pool)."""
    import psycopg

    from votes.counts import read_counts_sync

    with psycopg.connect(database_url) as conn:
        return read_counts_sync(conn, [poll_id])[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=10_000, help="streams on the one hot poll")
    parser.add_argument("--rate", type=float, default=300.0, help="votes per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long votes arrive")
    parser.add_argument("--voters", type=int, default=600, help="each votes rate/voters a second")
    parser.add_argument(
        "--client-processes", type=int, default=2, help="processes that hold the streams"
    )
    parser.add_argument("--in-flight", type=int, default=32, help="handshakes at a time, each")
    parser.add_argument("--profile", default="bench", help="stack profile to run against")
    add_checkout_option(parser)
    args = parser.parse_args()

    pipes, procs = fork_stream_clients(
        client_process, args.streams, args.client_processes, args.in_flight
    )

    topic = f"bench-hot-{uuid.uuid4().hex[:8]}"
    extra = {"KAFKA_VOTE_TOPIC": topic}
    setup_django(args.profile, extra)
    from bench.setup import prepare_stack

    prepare_stack()
    from django.conf import settings

    from votes import broker, pubsub

    broker.ensure_topic(topic, settings.KAFKA_VOTE_TOPIC_PARTITIONS, 1)
    poll, cookies = asyncio.run(prepare(args.voters))
    env = {
        **stack_env(args.profile),
        **signing_keys(),
        **extra,
        "SSE_MAX_STREAMS_PER_PROCESS": str(args.streams * 2),
        "SSE_MAX_STREAMS_PER_USER": str(args.streams * 2),
    }
    server = start_uvicorn(env, 1, RESULTS_DIR / "hot_poll.server.log", args.checkout)
    with (RESULTS_DIR / "hot_poll.consumer.log").open("ab") as consumer_log:
        consumer = subprocess.Popen(
            consume_votes_command(group=f"bench-{topic}"),
            cwd=args.checkout,
            env={**os.environ, **env},
            stdout=consumer_log,
            stderr=subprocess.STDOUT,
        )
    publications = Publications(pubsub.updates_channel(poll.id))
    try:
        pid = server.proc.pid
        # A first vote: the producer connects, the consumer joins its group.
        asyncio.run(vote_load(server.port, poll, cookies[:1], 1, 1, 1))
        rss_before = rss_kib(pid)
        began = time.monotonic()
        for parent in pipes:
            parent.send((server.port, poll.id))
        for parent in pipes:
            if not parent.poll(600) or parent.recv()[0] != "ready":
                raise SystemExit("a client process did not open its streams")
        opened = time.monotonic() - began
        time.sleep(2)
        rss_streams = rss_kib(pid)
        pids = process_tree(pid)
        cpu_before, load_before = cpu_seconds(pids), os.getloadavg()[0]
        sent, refused, elapsed = asyncio.run(
            vote_load(server.port, poll, cookies, args.rate, args.seconds, 64)
        )
        cpu_load = cpu_seconds(pids) - cpu_before
        rss_peak = rss_kib(pid)
        # Until the consumer has applied everything: the counts version stops moving.
        final = counts_now(settings.DATABASE_URL, poll.id)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(2)
            latest = counts_now(settings.DATABASE_URL, poll.id)
            if latest.version == final.version:
                break
            final = latest
        time.sleep(3)  # the last update reaches the streams
        published = publications.stop()
        reports = []
        for parent in pipes:
            parent.send(published)
        for parent in pipes:
            if not parent.poll(600):
                raise SystemExit("a client process did not report")
            reports.append(parent.recv())
    finally:
        consumer.terminate()
        consumer.wait(timeout=30)
        server.stop()
        for proc in procs:
            if proc.is_alive():
                proc.terminate()

    histogram = [sum(column) for column in zip(*(report[1] for report in reports), strict=True)]
    events = [n for report in reports for n in report[2]]
    last = [data for report in reports for data in report[3]]
    closed = sum(report[4] for report in reports)
    never = sum(report[5] for report in reports)
    expected = [
        {"vote_option_id": option, "vote_count": count}
        for option, count in zip(final.option_ids, final.vote_counts, strict=True)
    ]
    wrong = sum(json.loads(data) != expected for data in last)
    ms = [percentile_ms(histogram, f) for f in (0.5, 0.9, 0.99, 0.999)]
    print(f"machine: {machine()}; load before the votes {load_before:.2f}")
    print(
        f"streams: {args.streams} on poll {poll.id}, one uvicorn worker; opened in {opened:.1f} s; "
        f"closed by the server: {closed}"
    )
    print(
        f"votes: {sent} in {elapsed:.1f} s ({sent / elapsed:.0f}/s, asked {args.rate:.0f}/s), "
        f"{refused} refused; versions published: {len(published)}, the last {final.version}"
    )
    print(
        f"events per stream: min {min(events)}, median {sorted(events)[len(events) // 2]}, "
        f"max {max(events)} (the first is the counts at opening)"
    )
    print(
        f"staleness over {sum(histogram)} (version, stream) pairs: p50 {ms[0]} ms, "
        f"p90 {ms[1]} ms, p99 {ms[2]} ms, p99.9 {ms[3]} ms (target p99 <= 1000); "
        f"never shown: {never}"
    )
    print(
        f"final counts {final.vote_counts} (version {final.version}): streams whose last event "
        f"differs: {wrong} of {len(last)}"
    )
    print(
        f"web process: CPU {cpu_load:.1f} s over {elapsed:.1f} s of votes = "
        f"{100 * cpu_load / elapsed:.0f}% of a core, {1000 * cpu_load / max(sent, 1):.2f} ms "
        f"per vote (its POST and the fan-out); RSS {rss_before / 1024:.0f} MiB before the "
        f"streams, {rss_streams / 1024:.0f} MiB with them, {rss_peak / 1024:.0f} MiB at the end "
        f"of the votes ({(rss_streams - rss_before) / args.streams:.1f} KiB per stream)"
    )


if __name__ == "__main__":
    main()
