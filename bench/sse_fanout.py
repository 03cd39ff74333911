"""Fan-out of one update to N concurrent streams on ONE web process.

Starts uvicorn with one worker on 127.0.0.1 against a running stack, opens N streams
(default 10,000) on one poll from raw asyncio sockets in a few client processes, then
publishes one update on the poll's Valkey channel (as the vote consumer does) and
reports the time until the last stream has it, and the server's resident memory per
stream (RSS after opening the streams minus RSS before, divided by N).

    python -m bench.sse_fanout --streams 10000 --client-processes 2
    python -m bench.sse_fanout --streams 2000 --updates 50 --interval 0.1

Targets (issue 6): all streams within 1 s; at most 40 KiB per stream. With `--updates`
N > 1 it then publishes N - 1 more updates, one every `--interval` seconds (slow enough
for every stream to get each one), and reports the server's CPU time per stream event:
what one event costs the process (the hub, the stream, the socket write), a figure the
machine's load distorts far less than delivery times.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from multiprocessing.connection import Connection
from typing import Any

from bench.common import (
    RESULTS_DIR,
    add_checkout_option,
    fork_stream_clients,
    machine,
    open_streams,
    rss_kib,
    setup_django,
    stack_env,
    start_stack,
    start_uvicorn,
    stream_request,
    tree_cpu_seconds,
)


def client_process(pipe: Connection, count: int, in_flight: int) -> None:
    """Open `count` streams, report, wait for the update's version, report arrival times."""
    import uvloop

    port, poll_id = pipe.recv()

    async def run() -> None:
        began = time.monotonic()
        clients = await open_streams(port, [stream_request(poll_id)] * count, in_flight)
        pipe.send(("ready", time.monotonic() - began))
        loop = asyncio.get_running_loop()
        target = await loop.run_in_executor(None, pipe.recv)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if all(any(v == target for v, _, _ in c.seen) for c in clients):
                break
            await asyncio.sleep(0.005)
        arrivals = [next((t for v, t, _ in c.seen if v == target), None) for c in clients]
        pipe.send(("done", arrivals, sum(c.closed for c in clients)))
        # More updates, if any: report how many of them each stream saw.
        while (last := await loop.run_in_executor(None, pipe.recv)) is not None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if all(c.seen and c.seen[-1][0] >= last for c in clients):
                    break
                await asyncio.sleep(0.01)
            pipe.send(sum(1 for c in clients for v, _, _ in c.seen if target < v <= last))
        for client in clients:
            if client.transport is not None:
                client.transport.close()
        await asyncio.sleep(0.5)

    uvloop.run(run())


async def make_poll() -> Any:
    from bench.common import make_user
    from polls.services import do_create_poll

    user = await make_user("bench")
    return await do_create_poll(user, "Fan-out benchmark?", ["yes", "no"], "public_view", None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=10_000, help="streams to open on one poll")
    parser.add_argument(
        "--client-processes", type=int, default=2, help="processes that hold the streams"
    )
    parser.add_argument("--in-flight", type=int, default=64, help="handshakes at a time, each")
    parser.add_argument("--profile", default="dev", help="stack profile to run against")
    add_checkout_option(parser)
    parser.add_argument(
        "--updates", type=int, default=1, help="updates to publish (more than 1: CPU per event)"
    )
    parser.add_argument(
        "--interval", type=float, default=0.1, help="seconds between the further updates"
    )
    args = parser.parse_args()

    pipes, procs = fork_stream_clients(
        client_process, args.streams, args.client_processes, args.in_flight
    )

    setup_django(args.profile)
    start_stack(args.profile)
    from db.valkey import get_sync_valkey
    from votes import pubsub
    from votes.rows import PollCounts

    poll = asyncio.run(make_poll())
    env = {
        **stack_env(args.profile),
        "SSE_MAX_STREAMS_PER_PROCESS": str(args.streams * 2),
        "SSE_MAX_STREAMS_PER_USER": str(args.streams * 2),
    }
    server = start_uvicorn(env, 1, RESULTS_DIR / "sse_fanout.server.log", args.checkout)
    try:
        pid = server.proc.pid
        # Warm up: the first streams load code and open the pools.
        asyncio.run(_warm_up(server.port, poll.id))
        time.sleep(1)
        rss_before = rss_kib(pid)

        began = time.monotonic()
        for parent in pipes:
            parent.send((server.port, poll.id))
        connect_seconds = [_receive(parent, 300)[1] for parent in pipes]
        opened_in = time.monotonic() - began
        time.sleep(2)  # let the server settle before reading its memory
        rss_after = rss_kib(pid)

        version = 1
        message = pubsub.encode(PollCounts(poll.id, version, list(poll.option_ids), [1, 0]))
        for parent in pipes:
            parent.send(version)
        published_at = time.time()
        get_sync_valkey().publish(*message)
        results = [_receive(parent, 60) for parent in pipes]
        events_cpu = _more_updates(args, pipes, poll, pid) if args.updates > 1 else None
        for parent in pipes:
            parent.send(None)
        for proc in procs:
            proc.join(timeout=10)
    finally:
        server.stop()
        for proc in procs:
            if proc.is_alive():
                proc.terminate()

    arrivals = [t for _, times, _ in results for t in times]
    got = sorted(t - published_at for t in arrivals if t is not None)
    missing = len(arrivals) - len(got)
    closed = sum(n for _, _, n in results)
    per_stream = (rss_after - rss_before) / args.streams
    print(f"machine: {machine()}")
    print(f"streams: {args.streams} on one uvicorn worker, clients: {args.client_processes} procs")
    print(
        f"opened in {opened_in:.1f} s (clients: {', '.join(f'{s:.1f} s' for s in connect_seconds)})"
    )
    print(
        f"server RSS: {rss_before / 1024:.1f} MiB before, {rss_after / 1024:.1f} MiB with the "
        f"streams: {per_stream:.1f} KiB per stream (target <= 40)"
    )
    if got:
        print(
            f"update reached {len(got)}/{len(arrivals)} streams, "
            f"the last after {got[-1] * 1000:.0f} ms "
            f"(target <= 1000), first {got[0] * 1000:.0f} ms, "
            f"p50 {statistics.median(got) * 1000:.0f} ms, "
            f"p99 {got[int(len(got) * 0.99) - 1] * 1000:.0f} ms"
        )
    print(f"streams that missed the update: {missing}; closed by the server: {closed}")
    if events_cpu is not None:
        events, cpu, elapsed = events_cpu
        print(
            f"{args.updates - 1} more updates in {elapsed:.1f} s: {events} stream events "
            f"({events / ((args.updates - 1) * args.streams):.1%} of all), server CPU "
            f"{cpu:.2f} s = {cpu / max(events, 1) * 1e6:.1f} us per stream event"
        )


def _more_updates(
    args: argparse.Namespace, pipes: list[Connection], poll: Any, pid: int
) -> tuple[int, float, float]:
    """Publish updates 2..N at the interval; (stream events seen, server CPU, seconds)."""
    from db.valkey import get_sync_valkey
    from votes import pubsub
    from votes.rows import PollCounts

    valkey = get_sync_valkey()
    time.sleep(1)
    began, cpu_before = time.monotonic(), tree_cpu_seconds(pid)
    for version in range(2, args.updates + 1):
        counts = PollCounts(poll.id, version, list(poll.option_ids), [version, 0])
        valkey.publish(*pubsub.encode(counts))
        time.sleep(max(0.0, began + (version - 1) * args.interval - time.monotonic()))
    for parent in pipes:
        parent.send(args.updates)
    events = sum(_receive(parent, 90) for parent in pipes)
    # The server's CPU up to the last event (a client reports once its streams have it).
    return events, tree_cpu_seconds(pid) - cpu_before, time.monotonic() - began


def _receive(pipe: Connection, within: float) -> Any:
    if not pipe.poll(within):
        raise SystemExit(f"a client process did not report within {within:.0f} s")
    return pipe.recv()


async def _warm_up(port: int, poll_id: int) -> None:
    clients = await open_streams(port, [stream_request(poll_id)] * 50, 50)
    for client in clients:
        if client.transport is not None:
            client.transport.close()


if __name__ == "__main__":
    main()
