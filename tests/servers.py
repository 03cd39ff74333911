"""Real ASGI servers on 127.0.0.1 for end-to-end tests: uvicorn (production) and daphne.

They run the project against the test stack (DJANGO_SETTINGS_MODULE=tests.settings, and
this run's environment, so the same database, Valkey and vote topic).
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
from typing import Literal

from stack.profiles import PROJECT_ROOT

Kind = Literal["uvicorn", "daphne"]


@dataclass
class Server:
    kind: Kind
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
        """Send SIGTERM to the server (to the whole group: uvicorn's workers, daphne)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)

    def wait(self, timeout: float) -> int | None:
        """The exit code, or None if it is still running after `timeout` seconds."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        self.terminate()
        if self.wait(30) is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    kind: Kind, log: Path, workers: int = 1, env: dict[str, str] | None = None
) -> Server:
    """Start a server and wait until it answers /api/health."""
    port = free_port()
    if kind == "uvicorn":
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "feedapp.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
        ]
    else:
        command = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]
    full_env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", **(env or {})}
    with log.open("ab") as out:
        proc = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(kind, proc, port, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{kind} exited:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{port}/api/health", timeout=1
            ) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"{kind} did not answer within 60 s:\n{server.log_tail()}")
