"""End-to-end latency: votes submitted at a steady rate while streams watch the polls.

Starts uvicorn (two workers) and the vote consumer on 127.0.0.1 against a running stack,
with a topic of the run's own. Client processes open the streams (default 1,000 on 10
polls). Then votes go out at a steady rate (default 500/s, open loop: up to --in-flight
requests at a time), each from a voter new to that poll, for its first option. Latency is
measured on probe votes: on each poll one probe voter moves its vote between the second
and third option every --probe-interval seconds, so the first event of a stream that
shows the probe's new option is the one that carries that vote. The latency of a probe
on a stream is the time from just before its POST to that event.

    python -m bench.sse_e2e --rate 500 --streams 1000 --polls 10 --seconds 20

With --trace, one more process reads the vote topic (read_committed, as the consumer
does) and the polls' Valkey channels, so each probe is also timed where it became
readable in Kafka and where the consumer published its counts: the latency split into
the web's part, the consumer's and the fan-out's.

Target (issue 6): p99 under 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import multiprocessing
import os
import statistics
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from bench.common import (
    RESULTS_DIR,
    add_checkout_option,
    bucket_quantiles,
    machine,
    make_user,
    open_streams,
    raise_fd_limit,
    scrape_histograms,
    setup_django,
    signing_keys,
    stack_env,
    start_stack,
    start_uvicorn,
    stream_request,
    tree_cpu_seconds,
)
from stack.processes import consume_votes_command

# Per stream, its events: (arrival time, version, votes for option 2, votes for option 3).
StreamEvents = tuple[int, list[tuple[float, int, int, int]]]


def client_process(pipe: Connection, in_flight: int) -> None:
    """Open the streams it is given; on "stop", send back what each stream received."""
    import uvloop

    port, polls = pipe.recv()  # one poll id per stream

    async def run() -> None:
        clients = await open_streams(
            port, [stream_request(poll_id) for poll_id in polls], in_flight, record_data=True
        )
        pipe.send("ready")
        await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
        states: dict[tuple[int, int], tuple[int, int]] = {}
        streams: list[StreamEvents] = []
        for client in clients:
            poll_id = int(client.request.split(b" ", 2)[1].rsplit(b"/", 1)[1])
            events = []
            for version, at, data in client.seen:
                key = (poll_id, version)
                if key not in states:
                    counts = [pair["vote_count"] for pair in json.loads(data)]
                    states[key] = (counts[1], counts[2])
                events.append((at, version, *states[key]))
            streams.append((poll_id, events))
            if client.transport is not None:
                client.transport.close()
        pipe.send(streams)

    uvloop.run(run())


def observer_process(pipe: Connection) -> None:
    """With --trace: watch the vote's path between the POST and the streams. Records, per
    poll, when each of its Kafka records became readable (read_committed, as the consumer
    reads them) and when each of its Valkey messages was published, and sends both back
    on "stop"."""
    import threading

    import valkey
    from kafka import KafkaConsumer, TopicPartition

    from votes.messages import VoteEvent
    from votes.pubsub import decode, updates_channel
    from votes.rows import PollCounts

    valkey_url, servers, topic, polls = pipe.recv()  # polls: {poll id: option ids}
    stop = threading.Event()
    # Per poll: (arrival, vote option id) of each record; (arrival, version, b, c) of each
    # message, the shape of a stream's events.
    records: dict[int, list[tuple[float, int]]] = {poll_id: [] for poll_id in polls}
    messages: dict[int, list[tuple[float, int, int, int]]] = {poll_id: [] for poll_id in polls}

    def read_kafka() -> None:
        consumer = KafkaConsumer(
            bootstrap_servers=servers, isolation_level="read_committed", enable_auto_commit=False
        )
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        consumer.seek_to_end()
        for tp in partitions:
            consumer.position(tp)
        ready.set()
        while not stop.is_set():
            for batch in consumer.poll(timeout_ms=100).values():
                arrival = time.time()
                for record in batch:
                    event = VoteEvent.decode(record.value)
                    if event.poll_id in records:
                        records[event.poll_id].append((arrival, event.vote_option_id))
        consumer.close()

    def read_valkey() -> None:
        pubsub = valkey.Valkey.from_url(valkey_url).pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(*map(updates_channel, polls))
        while not stop.is_set():
            message = pubsub.get_message(timeout=0.1)
            if message is None:
                continue
            arrival = time.time()
            update = decode(message["channel"], message["data"])
            if isinstance(update, PollCounts):
                counts = dict(zip(update.option_ids, update.vote_counts, strict=True))
                options = polls[update.poll_id]
                messages[update.poll_id].append(
                    (arrival, update.version, counts[options[1]], counts[options[2]])
                )
        pubsub.close()

    ready = threading.Event()
    threads = [threading.Thread(target=read_kafka), threading.Thread(target=read_valkey)]
    for thread in threads:
        thread.start()
    ready.wait(60)
    pipe.send("ready")
    pipe.recv()
    stop.set()
    for thread in threads:
        thread.join()
    pipe.send((records, messages))


class Submitter:
    """Votes over one keep-alive HTTP/1.1 connection, one at a time."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def vote(self, cookie: str, poll_id: int, option_id: int) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        body = json.dumps({"poll_id": poll_id, "vote_option_id": option_id}).encode()
        self.writer.write(
            b"POST /api/vote/submit HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nCookie: " + cookie.encode() + b"\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await self.reader.readexactly(length)
        return status


async def prepare(polls: int, voters: int) -> tuple[list[Any], list[str], list[str], Any]:
    from accounts.auth import COOKIE_NAME
    from accounts.tokens import issue_token
    from polls.services import do_create_poll

    creator = await make_user("bench")
    options = ["load", "probe b", "probe c"]
    made = [
        await do_create_poll(creator, f"Latency {n}?", options, "public_vote", None)
        for n in range(polls + 1)
    ]
    users = [await make_user("voter") for _ in range(voters)]
    probes = [await make_user("probe") for _ in range(polls)]

    def cookie(user: Any) -> str:
        return f"{COOKIE_NAME}={issue_token(user.id)}"

    return made[:polls], [cookie(u) for u in users], [cookie(u) for u in probes], made[polls]


@dataclass
class Load:
    sent: int = 0
    refused: int = 0
    post_latency: list[float] = field(default_factory=list)
    # Per poll: (time just before the POST, option index 1 or 2) of each accepted probe.
    probes: dict[int, list[tuple[float, int]]] = field(default_factory=dict)
    probe_post_latency: list[float] = field(default_factory=list)
    began: float = 0.0  # wall clock, as the streams' arrival times
    elapsed: float = 0.0


async def run_load(
    port: int,
    polls: list[Any],
    cookies: list[str],
    probe_cookies: list[str],
    args: argparse.Namespace,
) -> Load:
    load = Load(probes={poll.id: [] for poll in polls})
    total = int(args.rate * args.seconds)
    queue: asyncio.Queue[int | None] = asyncio.Queue()
    began = time.monotonic() + 0.5

    async def schedule() -> None:
        # Open loop: vote n is due at began + n / rate, whether or not earlier ones returned.
        for n in range(total):
            delay = began + n / args.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            queue.put_nowait(n)
        for _ in range(args.in_flight):
            queue.put_nowait(None)

    async def sender() -> None:
        submitter = Submitter(port)
        while (n := await queue.get()) is not None:
            poll = polls[n % len(polls)]
            at = time.time()
            status = await submitter.vote(cookies[n // len(polls)], poll.id, poll.option_ids[0])
            load.post_latency.append(time.time() - at)
            load.sent += 1
            load.refused += status != 201

    async def probe(index: int, poll: Any) -> None:
        submitter = Submitter(port)
        option = 1
        await asyncio.sleep(0.5 + index * args.probe_interval / len(polls))
        while time.monotonic() < began + args.seconds:
            option = 3 - option  # 2, 1, 2, 1...: the probe moves between options b and c
            at = time.time()
            status = await submitter.vote(probe_cookies[index], poll.id, poll.option_ids[option])
            if status == 201:
                load.probes[poll.id].append((at, option))
                load.probe_post_latency.append(time.time() - at)
            await asyncio.sleep(args.probe_interval)

    start = time.monotonic()
    load.began = time.time()
    await asyncio.gather(
        schedule(),
        *(sender() for _ in range(args.in_flight)),
        *(probe(i, poll) for i, poll in enumerate(polls)),
    )
    load.elapsed = time.monotonic() - start
    return load


def probe_latencies(load: Load, streams: list[StreamEvents]) -> tuple[list[float], int, int]:
    """Per (probe, stream): the time to the first event that shows the probe's option."""
    latencies: list[float] = []
    missing = ambiguous = 0
    for poll_id, events in streams:
        times = [event[0] for event in events]
        for sent_at, option in load.probes[poll_id]:
            shown = (1, 0) if option == 1 else (0, 1)
            before = bisect.bisect_left(times, sent_at)
            # When this probe was sent the stream must have shown something else (the
            # previous probe's option, or none yet), or a later event with this option
            # could predate it.
            if before > 0 and events[before - 1][2:] == shown:
                ambiguous += 1
                continue
            match = next((event for event in events[before:] if event[2:] == shown), None)
            if match is None:
                missing += 1
            else:
                latencies.append(match[0] - sent_at)
    return latencies, missing, ambiguous


def record_latencies(
    load: Load, polls: list[Any], records: dict[int, list[tuple[float, int]]]
) -> list[float]:
    """Per probe: the time to the first Kafka record of its option readable after its POST."""
    latencies = []
    for poll in polls:
        seen = records[poll.id]
        times = [arrival for arrival, _ in seen]
        for sent_at, option in load.probes[poll.id]:
            wanted = poll.option_ids[option]
            start = bisect.bisect_left(times, sent_at)
            match = next((at for at, option_id in seen[start:] if option_id == wanted), None)
            if match is not None:
                latencies.append(match - sent_at)
    return latencies


def summary(values: list[float]) -> str:
    ms = 1000
    return (
        f"p50 {statistics.median(values) * ms:.1f} ms, p90 {percentile(values, 0.9) * ms:.1f} ms, "
        f"p99 {percentile(values, 0.99) * ms:.1f} ms ({len(values)})"
    )


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=500.0, help="votes per second, in all")
    parser.add_argument("--streams", type=int, default=1000, help="streams, spread over the polls")
    parser.add_argument("--polls", type=int, default=10, help="polls voted on and watched")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long votes are sent")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument(
        "--client-processes", type=int, default=2, help="processes that hold the streams"
    )
    parser.add_argument("--in-flight", type=int, default=64, help="load votes at a time")
    parser.add_argument("--probe-interval", type=float, default=0.5, help="seconds, per poll")
    parser.add_argument("--profile", default="dev", help="stack profile to run against")
    parser.add_argument(
        "--trace",
        action="store_true",
        help="also time each probe where it becomes readable in Kafka and where the consumer "
        "publishes it to Valkey (one more process, reading both)",
    )
    add_checkout_option(parser)
    args = parser.parse_args()

    raise_fd_limit()
    # The clients are forked before Django, pools and threads exist in this process.
    ctx = multiprocessing.get_context("fork")
    pipes = [ctx.Pipe() for _ in range(args.client_processes)]
    procs = [
        ctx.Process(target=client_process, args=(child, 50), daemon=True) for _, child in pipes
    ]
    observer = ctx.Pipe() if args.trace else None
    if observer is not None:
        procs.append(ctx.Process(target=observer_process, args=(observer[1],), daemon=True))
    for proc in procs:
        proc.start()

    topic = f"bench-vote-event-{uuid.uuid4().hex[:8]}"
    extra = {"KAFKA_VOTE_TOPIC": topic}
    setup_django(args.profile, extra)
    start_stack(args.profile)
    from django.conf import settings

    from votes import broker

    broker.ensure_topic(topic, settings.KAFKA_VOTE_TOPIC_PARTITIONS, 1)
    voters = int(args.rate * args.seconds / args.polls) + 1
    polls, cookies, probe_cookies, warm_poll = asyncio.run(prepare(args.polls, voters))

    env = {
        **stack_env(args.profile),
        **signing_keys(),
        **extra,
        "SSE_MAX_STREAMS_PER_USER": str(args.streams * 2),
        "SSE_MAX_STREAMS_PER_PROCESS": str(args.streams * 2),
        # Each voter votes once on every poll, within a few milliseconds.
        "VOTE_RATE_BURST": str(max(20, args.polls * 2)),
    }
    server = start_uvicorn(env, args.workers, RESULTS_DIR / "sse_e2e.server.log", args.checkout)
    with (RESULTS_DIR / "sse_e2e.consumer.log").open("ab") as consumer_log:
        consumer = subprocess.Popen(
            consume_votes_command(group=f"bench-{topic}"),
            cwd=args.checkout,
            env={**os.environ, **env},
            stdout=consumer_log,
            stderr=subprocess.STDOUT,
        )
    try:

        async def warm_up() -> None:
            # Each worker's Kafka producer connects on its first vote.
            for n in range(20):
                status = await Submitter(server.port).vote(
                    cookies[n], warm_poll.id, warm_poll.option_ids[0]
                )
                assert status == 201, status

        asyncio.run(warm_up())
        assignment = [polls[n % len(polls)].id for n in range(args.streams)]
        for index, (parent, _) in enumerate(pipes):
            parent.send((server.port, assignment[index :: len(pipes)]))
        for parent, _ in pipes:
            if not parent.poll(300) or parent.recv() != "ready":
                raise SystemExit("a client process did not open its streams")
        if observer is not None:
            observer[0].send(
                (
                    settings.VALKEY_URL,
                    settings.KAFKA_BOOTSTRAP_SERVERS,
                    topic,
                    {poll.id: poll.option_ids for poll in polls},
                )
            )
            if not observer[0].poll(120) or observer[0].recv() != "ready":
                raise SystemExit("the observer process did not start")
        time.sleep(2)
        histograms_before = scrape_histograms(server.port)
        cpu_before = tree_cpu_seconds(server.proc.pid)
        consumer_cpu_before = tree_cpu_seconds(consumer.pid)
        load = asyncio.run(run_load(server.port, polls, cookies, probe_cookies, args))
        web_cpu = tree_cpu_seconds(server.proc.pid) - cpu_before
        consumer_cpu = tree_cpu_seconds(consumer.pid) - consumer_cpu_before
        histograms = scrape_histograms(server.port)
        time.sleep(5)  # the last votes' events
        for parent, _ in pipes:
            parent.send("stop")
        streams: list[StreamEvents] = []
        for parent, _ in pipes:
            if not parent.poll(120):
                raise SystemExit("a client process did not report")
            streams.extend(parent.recv())
        if observer is not None:
            observer[0].send("stop")
            if not observer[0].poll(120):
                raise SystemExit("the observer process did not report")
            records, messages = observer[0].recv()
    finally:
        consumer.terminate()
        consumer.wait(timeout=30)
        server.stop()
        for proc in procs:
            if proc.is_alive():
                proc.terminate()

    latencies, missing, ambiguous = probe_latencies(load, streams)
    began, ended = load.began, load.began + load.elapsed
    events = sum(began <= at <= ended for _, seen in streams for at, *_ in seen)
    probes = sum(len(sent) for sent in load.probes.values())
    ms = 1000
    print(f"machine: {machine()}")
    print(
        f"load: {load.sent} votes in {load.elapsed:.1f} s ({load.sent / load.elapsed:.0f}/s, "
        f"target {args.rate:.0f}/s, {load.refused} refused), {probes} probes; "
        f"streams: {args.streams} on {args.polls} polls; uvicorn workers: {args.workers}"
    )
    print(
        f"POST /api/vote/submit: p50 {statistics.median(load.post_latency) * ms:.1f} ms, "
        f"p99 {percentile(load.post_latency, 0.99) * ms:.1f} ms"
    )
    if latencies:
        print(
            f"submit -> stream event: p50 {statistics.median(latencies) * ms:.1f} ms, "
            f"p99 {percentile(latencies, 0.99) * ms:.1f} ms, max {max(latencies) * ms:.1f} ms "
            f"(target p99 < 100 ms; {len(latencies)} probe deliveries, {missing} missing, "
            f"{ambiguous} ambiguous and left out)"
        )
    if observer is not None:
        # Each stage from just before the probe's POST: where the rest of the time goes.
        published, _, _ = probe_latencies(load, list(messages.items()))
        print(f"  probe POST answered: {summary(load.probe_post_latency)}")
        print(f"  readable in Kafka:   {summary(record_latencies(load, polls, records))}")
        print(f"  published to Valkey: {summary(published)}")
        print(f"  on the streams:      {summary(latencies)}")
    # The server's own view of a POST (from the app's first sight of the request, so the
    # client's figure less this is time queued before it) and of its wait for the brokers'
    # acknowledgement; bucket bounds only, and of one worker when there are several.
    for label, key in (
        ("POST in the server", ("feedapp_http_request_duration_seconds", "/api/vote/submit")),
        ("Kafka acknowledgement", ("feedapp_vote_produce_duration_seconds", "")),
    ):
        bounds = bucket_quantiles(histograms_before, histograms, key, [0.5, 0.9, 0.99])
        if bounds is not None:
            p50, p90, p99 = (f"<= {bound * ms:g} ms" for bound in bounds)
            print(f"{label}: p50 {p50}, p90 {p90}, p99 {p99} (histogram buckets)")
    # What the web worker spent while the votes came: the POSTs and the stream events
    # (compare runs with few and many streams for the cost of one stream event).
    print(
        f"web CPU: {web_cpu:.1f} s over {load.elapsed:.1f} s "
        f"({web_cpu / load.elapsed:.0%} of a core); stream events meanwhile: {events} "
        f"({events / load.elapsed:.0f}/s); per vote {web_cpu / max(load.sent, 1) * 1000:.2f} ms"
    )
    # Measured over the same time: a vote whose batch is still in hand is counted, a
    # batch of votes sent before the load (the warm-up) is not.
    print(
        f"consumer CPU: {consumer_cpu:.1f} s ({consumer_cpu / load.elapsed:.0%} of a core); "
        f"per vote {consumer_cpu / max(load.sent, 1) * 1000:.2f} ms"
    )


if __name__ == "__main__":
    main()
