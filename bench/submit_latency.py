"""Vote submission under load: requests/s and p50/p99 latency per ASGI server.

    .venv/bin/python -m bench.submit_latency [--clients 64] [--seconds 30]
        [--servers daphne,uvicorn]

Starts each server in turn as ONE process on 127.0.0.1 against the `bench` stack
(DEBUG off), then runs `--clients` keep-alive connections posting
/api/vote/submit back to back for `--seconds` as random users on random public
polls. Each 201 means the broker acknowledged the vote (acks=all). The load
client runs on the same 2 cores as the server, the stores and the broker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import time
import urllib.request

from bench.common import machine
from bench.http_load import run_load
from bench.setup import (
    PROFILE,
    git_revision,
    load_average,
    make_dataset,
    now,
    prepare_stack,
)
from stack.processes import ASGI_APP, uvicorn_command
from stack.profiles import PROJECT_ROOT

PORT = 8091


SERVERS = {
    "daphne": [".venv/bin/daphne", "-b", "127.0.0.1", "-p", str(PORT), ASGI_APP],
    "uvicorn": uvicorn_command(PORT, 1, "--lifespan", "off"),
    "uvicorn-2-workers": uvicorn_command(PORT, 2, "--lifespan", "off"),
}


def _start(name: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DJANGO_DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "VOTE_RATE_PER_SECOND": "1000",
        "VOTE_RATE_BURST": "1000",
    }
    with (PROFILE.data_dir / f"{name}-bench.log").open("wb") as log:
        proc = subprocess.Popen(SERVERS[name], cwd=PROJECT_ROOT, env=env, stdout=log, stderr=log)
    for _ in range(100):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/api/health", timeout=1):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"{name} did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=64, help="concurrent voters (closed loop)")
    parser.add_argument("--seconds", type=float, default=30, help="measured time per server")
    parser.add_argument(
        "--servers", default="daphne,uvicorn", help="comma-separated: daphne, uvicorn"
    )
    parser.add_argument(
        "--attach",
        action="store_true",
        help=f"load a server already listening on 127.0.0.1:{PORT} (profiling)",
    )
    args = parser.parse_args()
    # Imported here: bench.setup must configure Django first.
    from accounts.auth import COOKIE_NAME
    from accounts.tokens import issue_token

    prepare_stack()
    data = make_dataset(users=5000, polls=200)
    cookies = [f"{COOKIE_NAME}={issue_token(user_id)}" for user_id in data.user_ids]
    rng = random.Random(9)

    def make_request(_: int) -> bytes:
        poll_id, options = rng.choice(data.polls)
        body = json.dumps({"poll_id": poll_id, "vote_option_id": rng.choice(options)}).encode()
        return (
            f"POST /api/vote/submit HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Cookie: {rng.choice(cookies)}\r\n\r\n"
        ).encode() + body

    print(f"date: {now()}; machine: {machine()}; revision {git_revision()}")
    if args.attach:
        result = asyncio.run(run_load(PORT, make_request, args.clients, args.seconds))
        print(f"attached, {args.clients} clients: {result.summary()}")
        return
    for name in args.servers.split(","):
        proc = _start(name)
        try:
            asyncio.run(run_load(PORT, make_request, 4, 3))  # warm-up: producer, pools, caches
            print(f"{name}: load before {load_average()}", flush=True)
            result = asyncio.run(run_load(PORT, make_request, args.clients, args.seconds))
            print(f"{name}, {args.clients} clients: {result.summary()}", flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(f"stack: {PROFILE.name} profile")


if __name__ == "__main__":
    main()
