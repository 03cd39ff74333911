"""Shared pieces of the live-stream benchmarks: the stack's settings, a server to measure,
and cheap raw-socket SSE clients (many thousands per process).

Each script starts its profile's services if they are not running and migrates its
database (`start_stack`); FEEDAPP_STACK_PORT_OFFSET is honoured.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import multiprocessing.process
import os
import re
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, cast

from stack.processes import WebServer, free_port, start_web_server, uvicorn_command
from stack.profiles import PROJECT_ROOT, get_profile

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
RESULTS_DIR = PROJECT_ROOT / "bench" / "results"


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to its hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def stack_env(profile_name: str) -> dict[str, str]:
    """Settings that point the project at a stack profile's services."""
    profile = get_profile(profile_name)
    return {
        "DATABASE_URL": profile.database_url,
        "VALKEY_URL": profile.valkey_url,
        "KAFKA_BOOTSTRAP_SERVERS": profile.kafka_bootstrap,
        "DJANGO_SETTINGS_MODULE": "feedapp.settings",
        "DJANGO_DEBUG": "false",
        "LOG_LEVEL": "WARNING",
    }


def setup_django(profile_name: str, extra: dict[str, str] | None = None) -> None:
    """Configure Django in this process for the profile (to create users and polls)."""
    os.environ.update(stack_env(profile_name))
    os.environ.update(extra or {})
    import django

    django.setup()


def add_checkout_option(parser: argparse.ArgumentParser) -> None:
    """`--checkout`: the source tree the web server (and the consumer, where the script
    starts one) runs: another revision's, to compare with in alternated runs against the
    same stack."""
    parser.add_argument(
        "--checkout",
        type=Path,
        default=PROJECT_ROOT,
        help="source tree the server and consumer run (another revision's checkout, to "
        "compare with)",
    )


def start_stack(profile_name: str) -> None:
    """Start the profile's services (those not running yet) and bring its database's schema
    up to date; after setup_django."""
    from django.conf import settings

    from db.migrate import dbmate
    from stack.__main__ import start_all

    start_all(get_profile(profile_name))
    dbmate(settings.DATABASE_URL, "up")


def fork_stream_clients(
    target: Callable[[Connection, int, int], None], streams: int, processes: int, in_flight: int
) -> tuple[list[Connection], list[multiprocessing.process.BaseProcess]]:
    """Client processes that will open `streams` streams between them (`target(pipe,
    count, in_flight)` each), forked now: before Django, pools and threads exist in this
    process. Checks the open-file limit first. Returns this side's pipes and the processes."""
    limit = raise_fd_limit()
    if limit < streams + 1000:
        raise SystemExit(f"open-file limit {limit} is too low for {streams} streams")
    ctx = multiprocessing.get_context("fork")
    pipes = [ctx.Pipe() for _ in range(processes)]
    share = [streams // processes] * processes
    share[0] += streams - sum(share)
    procs: list[multiprocessing.process.BaseProcess] = [
        ctx.Process(target=target, args=(child, count, in_flight), daemon=True)
        for (_, child), count in zip(pipes, share, strict=True)
    ]
    for proc in procs:
        proc.start()
    return [parent for parent, _ in pipes], procs


async def make_user(prefix: str) -> Any:
    """A new active user with a unique name and no usable password (Django set up first)."""
    import uuid

    from accounts.rows import UserRow
    from db.pool import connection
    from db.sql import fetch_one, queries

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    params = {"username": name, "email": f"{name}@example.com", "password": "!bench"}
    async with connection() as conn:
        return await fetch_one(conn, queries("accounts")["create_user"], params, UserRow)


def start_uvicorn(
    env: dict[str, str], workers: int, log: Path, checkout: Path = PROJECT_ROOT
) -> WebServer:
    """uvicorn as production runs it (stack.processes), quieter and with a deep backlog;
    `checkout` is the source tree it serves (another revision's, to compare with)."""
    port = free_port()
    command = uvicorn_command(port, workers, "--log-level", "warning", "--backlog", "4096")
    return start_web_server(command, port, log, env, cwd=checkout)


def signing_keys() -> dict[str, str]:
    """This checkout's signing keys as environment variables: a server started from
    another checkout (--baseline, --checkout) generates its own, and would refuse the
    session cookies made here."""
    from django.conf import settings

    return {"JWT_SECRET_KEY": settings.JWT_SECRET_KEY, "DJANGO_SECRET_KEY": settings.SECRET_KEY}


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (uvicorn's workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes (all their threads), in seconds; the
    first one's also counts its children that ended (e.g. PostgreSQL's backends)."""
    ticks = 0
    for index, pid in enumerate(pids):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile: its time is in its parent's children's time
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
        if index == 0:
            ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / CLOCK_TICKS


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its descendants as they are now (PostgreSQL's backends
    come and go: those that ended are in its children's time)."""
    return cpu_seconds(process_tree(pid))


def stack_pids(profile_name: str) -> dict[str, int]:
    """The main process of each of a stack profile's services (see tree_cpu_seconds)."""
    profile = get_profile(profile_name)
    leaders = {
        "postgresql": profile.data_dir / "postgres" / "data" / "postmaster.pid",
        "valkey": profile.data_dir / "valkey" / "valkey.pid",
        "kafka": profile.data_dir / "kafka" / "kafka.pid",
    }
    found = {}
    for name, pidfile in leaders.items():
        try:
            found[name] = int(pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return found


def machine() -> str:
    cpus = os.cpu_count()
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return f"{cpus} cores, {mem_kib / 1024 / 1024:.1f} GiB RAM, load {os.getloadavg()[0]:.2f}"


# --- raw SSE clients ------------------------------------------------------------------------

_ID = re.compile(rb"\nid: (\d+)\n")
_DATA = re.compile(rb"\nid: (\d+)\ndata: (\[[^\n]*\])\n\n")


@dataclass(eq=False)
class SseProtocol(asyncio.Protocol):
    """One stream on one socket: sends `request`, reads the status, then hands each run of
    complete events to `take_events` with their arrival time. `connected` resolves with
    the status once the first event came (or with -1 if the connection ends before)."""

    request: bytes
    connected: asyncio.Future[int] | None = None
    status: int = 0
    buffer: bytes = b""
    closed: bool = False
    transport: asyncio.Transport | None = None

    def take_events(self, complete: bytes, now: float) -> bool:
        """Record these events; True when the stream has seen one."""
        raise NotImplementedError

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        self.buffer += data
        if not self.status:
            if b"\r\n\r\n" not in self.buffer:
                return
            head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            self.status = int(head.split(b" ", 2)[1])
        end = self.buffer.rfind(b"\n\n")
        if end < 0:
            return
        complete, self.buffer = self.buffer[: end + 2], self.buffer[end + 2 :]
        seen = self.take_events(complete, now)
        if self.connected is not None and not self.connected.done() and seen:
            self.connected.set_result(self.status)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.connected is not None and not self.connected.done():
            self.connected.set_result(self.status or -1)


@dataclass(eq=False)
class SseClient(SseProtocol):
    """Records when each event version arrived (and its data, with `record_data`)."""

    record_data: bool = False
    seen: list[tuple[int, float, bytes]] = field(default_factory=list)  # version, time, data

    def take_events(self, complete: bytes, now: float) -> bool:
        pattern = _DATA if self.record_data else _ID
        for match in pattern.finditer(b"\n" + complete):
            data = match.group(2) if self.record_data else b""
            self.seen.append((int(match.group(1)), now, data))
        return bool(self.seen)


def stream_request(poll_id: int, cookie: str | None = None) -> bytes:
    lines = [f"GET /api/vote/stream/{poll_id} HTTP/1.1", "Host: 127.0.0.1", "Accept: */*"]
    if cookie:
        lines.append(f"Cookie: {cookie}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def open_streams(
    port: int,
    requests: list[bytes],
    in_flight: int = 100,
    record_data: bool = False,
) -> list[SseClient]:
    """Open one stream per request, at most `in_flight` handshakes at a time."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(in_flight)
    clients: list[SseClient] = []

    async def one(request: bytes) -> None:
        async with gate:
            client = SseClient(request, loop.create_future(), record_data=record_data)
            await loop.create_connection(lambda: client, "127.0.0.1", port)
            clients.append(client)
            assert client.connected is not None
            status = await client.connected
            if status != 200:
                raise RuntimeError(f"stream answered {status}: {client.buffer[:200]!r}")

    await asyncio.gather(*(one(request) for request in requests))
    return clients


Histograms = dict[tuple[str, str], dict[float, float]]  # (name, route) -> {le: count}


def scrape_histograms(port: int) -> Histograms:
    """The server's histogram buckets from /api/metrics (loopback may scrape): per series
    name and route label (empty when it has none), the cumulative count per bound."""
    from urllib.request import urlopen

    from prometheus_client.parser import text_string_to_metric_families

    with urlopen(f"http://127.0.0.1:{port}/api/metrics", timeout=10) as answer:
        text = answer.read().decode()
    buckets: Histograms = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                key = (family.name, sample.labels.get("route", ""))
                bound = float(sample.labels["le"])
                series = buckets.setdefault(key, {})
                series[bound] = series.get(bound, 0.0) + sample.value
    return buckets


def bucket_quantiles(
    before: Histograms, after: Histograms, key: tuple[str, str], quantiles: list[float]
) -> list[float] | None:
    """For each quantile of what a histogram counted between two scrapes, the bucket bound
    it falls under (bucket resolution only); None when it counted nothing."""
    now, then = after.get(key, {}), before.get(key, {})
    counts = sorted((bound, count - then.get(bound, 0.0)) for bound, count in now.items())
    if not counts or counts[-1][1] <= 0:
        return None
    total = counts[-1][1]
    return [next(b for b, c in counts if c >= q * total) for q in quantiles]
