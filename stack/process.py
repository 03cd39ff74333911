"""Detached service processes tracked by pid files, and waiting on them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path


class StackError(RuntimeError):
    """A service could not be started or stopped; the message names the cause."""


def read_pid(pidfile: Path) -> int | None:
    """The pid in `pidfile` if that process is alive, else None."""
    try:
        pid = int(pidfile.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    if _is_zombie(pid):
        return None
    return pid


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def ensure_port_free(port: int, service: str) -> None:
    if port_open(port):
        raise StackError(
            f"{service}: port 127.0.0.1:{port} is taken by another process "
            f"(find it with `ss -ltnp 'sport = :{port}'`)"
        )


def spawn(
    argv: Sequence[str],
    logfile: Path,
    pidfile: Path,
    env: dict[str, str] | None = None,
    user: str | None = None,
) -> int:
    """Start argv detached from this session, output to logfile, pid to pidfile."""
    if user:
        argv = ["runuser", "-u", user, "--", *argv]
    with logfile.open("ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    pidfile.write_text(f"{proc.pid}\n")
    return proc.pid


def wait_until(
    ready: Callable[[], bool],
    alive: Callable[[], bool],
    timeout: float,
    service: str,
    logfile: Path,
) -> None:
    """Poll `ready` until true; fail fast with the log's tail if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if not alive():
            raise StackError(f"{service} exited during start-up; last log lines:\n{tail(logfile)}")
        time.sleep(0.2)
    raise StackError(
        f"{service} did not answer within {timeout:.0f} s; last log lines:\n{tail(logfile)}"
    )


def terminate(pidfile: Path, service: str, timeout: float = 20.0) -> bool:
    """SIGTERM the process in pidfile, SIGKILL after timeout. False if it was not running."""
    pid = read_pid(pidfile)
    if pid is None:
        pidfile.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if read_pid(pidfile) is None:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    pidfile.unlink(missing_ok=True)
    return True


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"(no log at {path})"
