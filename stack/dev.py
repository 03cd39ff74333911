"""`make dev`: services, migrations, web server and vote consumer; Ctrl-C stops them all."""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
import time
import urllib.request
from types import FrameType

from stack.__main__ import start_all, stop_all
from stack.process import StackError
from stack.profiles import PROJECT_ROOT, get_profile

WEB_ADDRESS = "127.0.0.1:8000"


def _manage(*args: str) -> list[str]:
    return [sys.executable, str(PROJECT_ROOT / "manage.py"), *args]


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
    subprocess.run(_manage("dbmate", "up"), check=True, cwd=PROJECT_ROOT)

    children: dict[str, subprocess.Popen[bytes]] = {}
    children["web"] = subprocess.Popen(_manage("runserver", WEB_ADDRESS), cwd=PROJECT_ROOT)
    if importlib.util.find_spec("votes.management.commands.consume_votes") is not None:
        children["consumer"] = subprocess.Popen(_manage("consume_votes"), cwd=PROJECT_ROOT)

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    try:
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
    finally:
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
        for child in children.values():
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
        stop_all(profile)


if __name__ == "__main__":
    sys.exit(main())
