"""`make dev`: services, migrations, web server and vote consumer; Ctrl-C stops them all."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from types import FrameType

from stack.__main__ import start_all, stop_all
from stack.process import StackError
from stack.processes import consume_votes_command, manage_command
from stack.profiles import PORT_OFFSET, PROJECT_ROOT, Profile, get_profile

# The frontend's dev server proxies /api to :8000. FEEDAPP_STACK_PORT_OFFSET (a second
# checkout running beside this one) shifts it like every port of the stack.
WEB_ADDRESS = f"127.0.0.1:{8000 + PORT_OFFSET}"


def _children_env(profile: Profile) -> dict[str, str]:
    """The environment of what `make dev` starts: pointed at the stack it started."""
    env = dict(os.environ)
    if PORT_OFFSET:
        # The settings' defaults name the unshifted development stack; with an offset,
        # they would reach another checkout's services (or none). The environment wins.
        env.setdefault("DATABASE_URL", profile.database_url)
        env.setdefault("VALKEY_URL", profile.valkey_url)
        env.setdefault("KAFKA_BOOTSTRAP_SERVERS", profile.kafka_bootstrap)
    return env


def _dev_environment() -> None:
    """Point every child (`manage.py` reads it, see feedapp.settings) at the dev stack."""
    os.environ["FEEDAPP_STACK_PROFILE"] = "dev"


def _wait_for_web(proc: subprocess.Popen[bytes], timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://{WEB_ADDRESS}/api/health", timeout=1):
                return True
        except OSError:
            time.sleep(0.3)
    return False


def main() -> int:
    profile = get_profile("dev")
    _dev_environment()
    began = time.monotonic()
    try:
        start_all(profile)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    def interrupt(signum: int, frame: FrameType | None) -> None:
        # Once: a second signal (make passing on the one its process group got, a second
        # Ctrl-C) would cut the shutdown below short and end with a traceback.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    # Explicitly: a process started in the background inherits SIGINT ignored.
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    children: dict[str, subprocess.Popen[bytes]] = {}
    env = _children_env(profile)
    try:
        subprocess.run(manage_command("dbmate", "up"), check=True, cwd=PROJECT_ROOT, env=env)
        # Own process groups: runserver's autoreloader forks, and the whole group must stop.
        children["web"] = _spawn(manage_command("runserver", WEB_ADDRESS), env)
        children["consumer"] = _spawn(consume_votes_command(), env)
        if _wait_for_web(children["web"]):
            print(
                f"serving on http://{WEB_ADDRESS} (ready in {time.monotonic() - began:.1f} s; "
                "Ctrl-C stops everything)",
                flush=True,
            )
        while all(child.poll() is None for child in children.values()):
            time.sleep(0.5)
        failed = [name for name, child in children.items() if child.poll() is not None]
        print(f"error: {', '.join(failed)} exited; stopping", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
        return 0
    except subprocess.CalledProcessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        _stop_children(children)
        stop_all(profile)


def _spawn(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, start_new_session=True)


def _stop_children(children: dict[str, subprocess.Popen[bytes]]) -> None:
    """SIGTERM each child's process group, then SIGKILL what is left after 15 s."""
    for child in children.values():
        _signal_group(child, signal.SIGTERM)
    for child in children.values():
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            _signal_group(child, signal.SIGKILL)
            child.wait()
        _signal_group(child, signal.SIGKILL)  # stragglers, e.g. the autoreloader's child


def _signal_group(child: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signum)


if __name__ == "__main__":
    sys.exit(main())
