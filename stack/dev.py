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
from stack.profiles import PROJECT_ROOT, get_profile

WEB_ADDRESS = "127.0.0.1:8000"


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
    began = time.monotonic()
    try:
        start_all(profile)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    # Explicitly: a process started in the background inherits SIGINT ignored.
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    children: dict[str, subprocess.Popen[bytes]] = {}
    try:
        subprocess.run(manage_command("dbmate", "up"), check=True, cwd=PROJECT_ROOT)
        # Own process groups: runserver's autoreloader forks, and the whole group must stop.
        children["web"] = _spawn(manage_command("runserver", WEB_ADDRESS))
        children["consumer"] = _spawn(consume_votes_command())
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


def _spawn(command: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, cwd=PROJECT_ROOT, start_new_session=True)


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
