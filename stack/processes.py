"""The project's own processes: their command lines, and starting a web server until it
answers. `make dev`, the tests and the benchmarks all start them from here, so that
what they run is what production runs (README, "Production shape").
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from stack.profiles import PROJECT_ROOT

ASGI_APP = "feedapp.asgi:application"


def manage_command(*args: str, checkout: Path = PROJECT_ROOT) -> list[str]:
    """`manage.py <args>` with this interpreter (of `checkout`, another source tree when
    a benchmark compares revisions)."""
    return [sys.executable, str(checkout / "manage.py"), *args]


# httptools with deadlines for slow clients' request headers and bodies.
HTTP_PROTOCOL = "feedapp.server:SlowClientGuard"


def uvicorn_command(port: int, workers: int = 1, *extra: str) -> list[str]:
    """uvicorn as production runs it (uvloop, httptools with slow-client timeouts, no access
    log), on 127.0.0.1."""
    return [
        sys.executable, "-m", "uvicorn", ASGI_APP, "--host", "127.0.0.1", "--port", str(port),
        "--workers", str(workers), "--loop", "uvloop", "--http", HTTP_PROTOCOL, "--no-access-log",
        *extra,
    ]  # fmt: skip


def runserver_command(port: int) -> list[str]:
    """Django's `runserver` (daphne, as `make dev` serves), on 127.0.0.1, no reloader."""
    return manage_command("runserver", f"127.0.0.1:{port}", "--noreload")


def consume_votes_command(
    topic: str | None = None,
    group: str | None = None,
    batch_size: int | None = None,
    poll_timeout_ms: int | None = None,
    stats_interval: float | None = None,
    instance_id: str | None = None,
    checkout: Path = PROJECT_ROOT,
) -> list[str]:
    """`manage.py consume_votes`; options left None take the command's defaults."""
    options = {
        "--topic": topic,
        "--group": group,
        "--batch-size": batch_size,
        "--poll-timeout-ms": poll_timeout_ms,
        "--stats-interval": stats_interval,
        "--instance-id": instance_id,
    }
    given = [(name, str(value)) for name, value in options.items() if value is not None]
    parts = (part for option in given for part in option)
    return manage_command("consume_votes", *parts, checkout=checkout)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers_health(port: int) -> bool:
    """Whether a web server on 127.0.0.1:`port` answers /api/health with 200."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


@dataclass
class WebServer:
    """A web server process of its own session (SIGTERM reaches all its workers)."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def terminate(self) -> None:
        """Send SIGTERM to the server's process group (uvicorn's workers too)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)

    def wait(self, timeout: float) -> int | None:
        """The exit code, or None if it is still running after `timeout` seconds."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM, then SIGKILL after `timeout` seconds."""
        self.terminate()
        if self.wait(timeout) is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def start_web_server(
    command: list[str],
    port: int,
    log: Path,
    env: dict[str, str],
    timeout: float = 60,
    cwd: Path = PROJECT_ROOT,
) -> WebServer:
    """Run `command` (serving on `port`, output appended to `log`, `env` over this process's
    environment) and wait until it answers /api/health; RuntimeError with the log's tail
    if it exits or does not answer in time. `cwd` is the checkout it runs (benchmarks
    compare two)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            command,
            cwd=cwd,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = WebServer(proc, port, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{command[:4]} exited:\n{server.log_tail()}")
        if answers_health(port):
            return server
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"{command[:4]} did not answer within {timeout:.0f} s:\n{server.log_tail()}")
