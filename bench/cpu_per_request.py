"""CPU time of the web process per request, per route, under wrk.

    .venv/bin/python -m bench.cpu_per_request                     # every route, 1 worker, 16 conns
    .venv/bin/python -m bench.cpu_per_request --routes submit --workers 2 --connections 64
    .venv/bin/python -m bench.cpu_per_request --routes poll --py-spy bench/results/profiles

Starts uvicorn as production runs it (stack.processes) against the `bench` stack, DEBUG
off, the vote rate limit raised out of the way, and loads one route at a time with wrk
(Debian's `wrk`: a native load generator, so the client does not take the server's core).
Signed-in routes send the session cookies of --users users (200 by default); ids are
drawn at random from 200 public polls. Each route gets a warm-up, then a measured run.
Each process re-reads a user from PostgreSQL once its cached row is older than
AUTH_USER_CACHE_SECONDS (5 s): with 200 users nearly every request finds it cached, so
the figure does not follow the throughput; with many more users (--users 20000) most
requests pay that query too.

The figure that matters is the server's CPU per request: the user + system time of the
server's processes (every worker and thread, the Kafka producer's sender included) from
/proc before and after the run, divided by the requests answered. It does not depend on
how busy the machine is, unlike requests/s and latency, which are printed beside it with
the load average. With --py-spy DIR, a second run per route is sampled by py-spy and the
busiest functions are printed (the stacks are written to DIR for flame graphs).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import (
    RESULTS_DIR,
    cpu_seconds,
    machine,
    process_tree,
    signing_keys,
    stack_env,
    start_uvicorn,
)
from bench.setup import PROFILE, git_revision, load_average, make_dataset, now, prepare_stack
from stack.processes import WebServer


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    signed_in: bool
    what: str


ROUTES = {
    route.name: route
    for route in [
        Route("health", "GET", False, "GET /api/health"),
        Route("me", "GET", True, "GET /api/user/me"),
        Route("poll", "GET", True, "GET /api/poll/{id}"),
        Route("counts", "GET", True, "GET /api/vote/{id}"),
        Route("feed50", "GET", True, "GET /api/poll/all (50 polls)"),
        Route("feed10", "GET", True, "GET /api/poll/all?limit=10"),
        Route("submit", "POST", True, "POST /api/vote/submit"),
    ]
}


def _lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal here


def wrk_script(route: Route, cookies: list[str], polls: list[tuple[int, list[int]]]) -> str:
    """A wrk script that sends `route` with a random user and poll for every request."""
    rng = random.Random(15)
    requests: list[tuple[str, str]] = []  # (path, body)
    for _ in range(4000):
        poll_id, options = rng.choice(polls)
        if route.name == "health":
            requests.append(("/api/health", ""))
        elif route.name == "me":
            requests.append(("/api/user/me", ""))
        elif route.name == "poll":
            requests.append((f"/api/poll/{poll_id}", ""))
        elif route.name == "counts":
            requests.append((f"/api/vote/{poll_id}", ""))
        elif route.name == "feed50":
            requests.append(("/api/poll/all", ""))
        elif route.name == "feed10":
            requests.append(("/api/poll/all?limit=10", ""))
        else:
            body = json.dumps({"poll_id": poll_id, "vote_option_id": rng.choice(options)})
            requests.append(("/api/vote/submit", body))
    chosen = [rng.choice(cookies) if route.signed_in else "" for _ in requests]
    lines = [
        "local paths = {" + ",".join(_lua_string(p) for p, _ in requests) + "}",
        "local bodies = {" + ",".join(_lua_string(b) for _, b in requests) + "}",
        "local cookies = {" + ",".join(_lua_string(c) for c in chosen) + "}",
        "local n = 0",
        "function init(args) n = math.random(#paths) end",
        "function request()",
        "  n = n % #paths + 1",
        '  local headers = {["Content-Type"] = "application/json"}',
        '  if cookies[n] ~= "" then headers["Cookie"] = cookies[n] end',
        '  local body = bodies[n] ~= "" and bodies[n] or nil',
        f'  return wrk.format("{route.method}", paths[n], headers, body)',
        "end",
    ]
    return "\n".join(lines) + "\n"


@dataclass
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    bad: int  # non-2xx answers, socket errors and timeouts

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)([a-z]+)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def parse_wrk(output: str) -> WrkResult:
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+)", output)
    if total is None:
        raise RuntimeError(f"wrk printed no total:\n{output}")
    seconds = _ms(total.group(2) + total.group(3)) / 1000
    percentiles = dict(re.findall(r"^\s+(\d+)%\s+(\S+)$", output, re.MULTILINE))
    bad = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output))
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if errors:
        bad += sum(int(n) for n in errors.groups())
    return WrkResult(
        int(total.group(1)), seconds, _ms(percentiles["50"]), _ms(percentiles["99"]), bad
    )


def run_wrk(url: str, script: Path, connections: int, seconds: float) -> WrkResult:
    """One wrk run; its requests, latency percentiles and failures."""
    return parse_wrk(wrk_output(url, script, connections, seconds))


def wrk_output(url: str, script: Path, connections: int, seconds: float) -> str:
    # wrk takes whole seconds only ("1.5s" is refused).
    command = [
        "wrk", "-t", "1" if connections <= 32 else "2", "-c", str(connections),
        "-d", f"{max(1, round(seconds))}s", "--timeout", "10s", "--latency", "-s", str(script), url,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def profile_route(pids: list[int], url: str, script: Path, args: argparse.Namespace, out: Path):
    """Sample the server with py-spy during a wrk run; the stacks' summary lines."""
    out.parent.mkdir(parents=True, exist_ok=True)
    py_spy = Path(sys.executable).parent / "py-spy"
    spies = []
    for pid in pids:
        command = [str(py_spy), "record", "--pid", str(pid), "--rate", "250"]
        command += ["--duration", f"{args.seconds:g}", "--format", "raw"]
        # Without pausing the server: its timing (and so its path through the code) stays
        # as in the measured run, at the price of an odd torn stack.
        command += ["--nonblocking", "--output", f"{out}.{pid}.txt"]
        spies.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
    time.sleep(1)  # py-spy attaches
    wrk_output(url, script, args.connections, args.seconds)
    for spy in spies:
        spy.wait(timeout=60)
    return summarize_stacks([Path(f"{out}.{pid}.txt") for pid in pids])


def summarize_stacks(files: list[Path], top: int = 25) -> list[str]:
    """The functions most often on the sampled stacks (inclusive) and at their top (self)."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for path in files:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")]
            total += count
            for frame in set(frames[1:]):  # the first frame names the thread
                inclusive[frame] += count
            own[frames[-1]] += count
    if not total:
        return ["  (no samples)"]
    lines = [f"  {total} samples; inclusive:"]
    lines += [f"    {100 * n / total:5.1f}%  {frame}" for frame, n in inclusive.most_common(top)]
    lines.append("  self:")
    lines += [f"    {100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(top)]
    return lines


def wait_for_votes(server: WebServer, cookie: str, poll: tuple[int, list[int]]) -> None:
    """Until a vote is accepted: the producer connects and a new topic gets its leaders."""
    body = json.dumps({"poll_id": poll[0], "vote_option_id": poll[1][0]}).encode()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        request = urllib.request.Request(  # noqa: S310
            f"{server.url}/api/vote/submit",
            body,
            {"Cookie": cookie, "Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 (loopback)
                if answer.status == 201:
                    return
        except OSError:
            time.sleep(0.5)
    raise SystemExit("no vote was accepted within 60 s")


@dataclass
class Measured:
    """What one server answered for one route, added up over the measured runs."""

    requests: int = 0
    seconds: float = 0.0
    cpu: float = 0.0
    bad: int = 0
    p50_ms: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)

    def add(self, result: WrkResult, cpu: float) -> None:
        self.requests += result.requests
        self.seconds += result.seconds
        self.cpu += cpu
        self.bad += result.bad
        self.p50_ms.append(result.p50_ms)
        self.p99_ms.append(result.p99_ms)

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.cpu / max(self.requests, 1)

    def row(self, what: str, load: str) -> str:
        rate = self.requests / self.seconds if self.seconds else 0.0
        return (
            f"{what:34} {self.requests:9d} {rate:7.0f} {self.cpu_ms_per_request:10.3f} "
            f"{max(self.p50_ms):7.1f} {max(self.p99_ms):7.1f} {self.bad:6d}  {load}"
        )


def measure(server: WebServer, script: Path, connections: int, seconds: float) -> Measured:
    """One wrk run against `server`, with the CPU its processes used meanwhile."""
    pids = process_tree(server.proc.pid)
    before = cpu_seconds(pids)
    result = run_wrk(server.url, script, connections, seconds)
    measured = Measured()
    measured.add(result, cpu_seconds(pids) - before)
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--routes", default=",".join(ROUTES), help="comma-separated names")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time per route")
    parser.add_argument("--warm-up", type=float, default=3.0, help="seconds per route")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--users", type=int, default=200, help="signed-in users to send as")
    parser.add_argument(
        "--baseline",
        metavar="CHECKOUT",
        help="also serve this source tree (another revision) and alternate between the two "
        "in --rounds runs per route: the ratio of their CPU per request holds however busy "
        "the machine is",
    )
    parser.add_argument("--rounds", type=int, default=4, help="alternations with --baseline")
    parser.add_argument("--py-spy", metavar="DIR", help="also profile each route, stacks to DIR")
    args = parser.parse_args()
    routes = [ROUTES[name] for name in args.routes.split(",")]
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install wrk")
    # Imported here: bench.setup must configure Django first.
    from accounts.auth import COOKIE_NAME
    from accounts.tokens import issue_token

    prepare_stack()
    data = make_dataset(users=args.users, polls=200)
    cookies = [f"{COOKIE_NAME}={issue_token(user_id)}" for user_id in data.user_ids]

    env = {
        **stack_env(PROFILE.name),
        "FEEDAPP_ENV_FILE": "/nonexistent",
        **signing_keys(),
        "VOTE_RATE_PER_SECOND": "100000",
        "VOTE_RATE_BURST": "100000",
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    servers = {"this": start_uvicorn(env, args.workers, RESULTS_DIR / "cpu_per_request.log")}
    if args.baseline:
        servers["baseline"] = start_uvicorn(
            env, args.workers, RESULTS_DIR / "cpu_per_request.baseline.log", Path(args.baseline)
        )
    print(f"date: {now()}; machine: {machine()}; revision {git_revision()}")
    print(
        f"uvicorn, {args.workers} worker(s), wrk {args.connections} connections, "
        f"{args.seconds:g} s per route after {args.warm_up:g} s of warm-up"
    )
    header = (
        f"{'route':34} {'requests':>9} {'req/s':>7} {'CPU ms/req':>10} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'errors':>6}  load"
    )
    print(header, flush=True)
    profiles: list[tuple[str, list[str]]] = []
    try:
        for route in routes:
            script = RESULTS_DIR / f"cpu_per_request.{route.name}.lua"
            script.write_text(wrk_script(route, cookies, data.polls))
            for server in servers.values():
                if route.name == "submit":
                    wait_for_votes(server, cookies[0], data.polls[0])
                wrk_output(server.url, script, args.connections, args.warm_up)
            load = load_average()
            if not args.baseline:
                measured = measure(servers["this"], script, args.connections, args.seconds)
                print(measured.row(route.what, load), flush=True)
            else:
                totals = {name: Measured() for name in servers}
                names = list(servers)
                for round_ in range(args.rounds):
                    for name in names if round_ % 2 == 0 else reversed(names):
                        one = measure(
                            servers[name], script, args.connections, args.seconds / args.rounds
                        )
                        totals[name].add(
                            WrkResult(
                                one.requests, one.seconds, one.p50_ms[0], one.p99_ms[0], one.bad
                            ),
                            one.cpu,
                        )
                for name, measured in totals.items():
                    print(measured.row(f"{route.what} [{name}]", load), flush=True)
                ratio = totals["this"].cpu_ms_per_request / totals["baseline"].cpu_ms_per_request
                print(f"{'':34} this / baseline CPU per request: {ratio:.2f}", flush=True)
            if args.py_spy:
                out = Path(args.py_spy) / f"{route.name}"
                pids = process_tree(servers["this"].proc.pid)
                lines = profile_route(pids, servers["this"].url, script, args, out)
                profiles.append((route.what, lines))
    finally:
        for server in servers.values():
            server.stop()
    for what, lines in profiles:
        print(f"\npy-spy, {what}:")
        print("\n".join(lines))


if __name__ == "__main__":
    main()
