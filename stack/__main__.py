"""`python -m stack [--profile dev|test] start|stop|status|urls [service ...]`."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from types import ModuleType

from stack import kafka, postgres, valkey
from stack.process import StackError
from stack.profiles import Profile, get_profile

SERVICES: dict[str, ModuleType] = {"postgres": postgres, "valkey": valkey, "kafka": kafka}


def _each(names: list[str], action: Callable[[ModuleType, str], None]) -> None:
    for name in names or list(SERVICES):
        if name not in SERVICES:
            raise SystemExit(f"unknown service {name!r}; known: {', '.join(SERVICES)}")
        action(SERVICES[name], name)


def start_all(profile: Profile, names: list[str] | None = None) -> None:
    """Start the services named (all by default); a running one is left alone."""

    def start(module: ModuleType, name: str) -> None:
        began = time.monotonic()
        started = module.start(profile)
        state = f"started in {time.monotonic() - began:.1f} s" if started else "already running"
        print(f"{name:9} {state}", flush=True)

    _each(names or [], start)


def stop_all(profile: Profile, names: list[str] | None = None) -> None:
    def stop(module: ModuleType, name: str) -> None:
        print(f"{name:9} {'stopped' if module.stop(profile) else 'was not running'}", flush=True)

    _each(list(reversed(names or list(SERVICES))), stop)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack", description=__doc__)
    parser.add_argument("--profile", default=None, help="dev (default) or test")
    parser.add_argument("command", choices=["start", "stop", "status", "urls"])
    parser.add_argument("services", nargs="*", help="postgres, valkey, kafka (default: all)")
    args = parser.parse_args(argv)
    profile = get_profile(args.profile)
    try:
        if args.command == "start":
            start_all(profile, args.services)
        elif args.command == "stop":
            stop_all(profile, args.services)
        elif args.command == "status":
            down = 0
            for name, module in SERVICES.items():
                running = module.is_running(profile)
                down += not running
                print(f"{name:9} {'running' if running else 'stopped'}")
            return 1 if down else 0
        else:
            print(f"DATABASE_URL={profile.database_url}")
            print(f"VALKEY_URL={profile.valkey_url}")
            print(f"KAFKA_BOOTSTRAP_SERVERS={profile.kafka_bootstrap}")
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
