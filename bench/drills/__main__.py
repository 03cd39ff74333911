"""`python -m bench.drills NAME`: run one fault drill against the `drill` stack profile.

    .venv/bin/python -m bench.drills consumer-kill      # 20,000 votes, 5 consumer SIGKILLs
    .venv/bin/python -m bench.drills kafka              # Kafka stopped 10 s, then frozen 10 s
    .venv/bin/python -m bench.drills postgres           # PostgreSQL restarted twice
    .venv/bin/python -m bench.drills valkey             # Valkey restarted, 50 streams open
    .venv/bin/python -m bench.drills consumer-pair      # two consumers: kill, restart, SIGTERM
    .venv/bin/python -m bench.drills web-sigterm        # one of two web processes SIGTERMed

Prints the figures and exits 1 on any difference, any 5xx other than 503, or a recovery
over its bound. Loopback only; FEEDAPP_STACK_PORT_OFFSET is honoured. Run one at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import sys
import time

from bench.common import raise_fd_limit, stack_env
from stack.profiles import PROJECT_ROOT, get_profile


def main(argv: list[str] | None = None) -> int:
    # Imported late: Django must be configured for the drill's stack first.
    parser = argparse.ArgumentParser(
        prog="python -m bench.drills",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "drill", help="consumer-kill, kafka, postgres, valkey, consumer-pair, web-sigterm"
    )
    parser.add_argument("--users", type=int, help="voters (default: the drill's)")
    parser.add_argument("--polls", type=int, help="polls voted on")
    parser.add_argument("--votes", type=int, help="vote requests to send in all")
    parser.add_argument("--rate", type=float, help="vote requests per second asked for")
    parser.add_argument("--streams", type=int, help="live streams watched")
    parser.add_argument("--profile", default="drill", help="stack profile (default: drill)")
    args = parser.parse_args(argv)

    profile = get_profile(args.profile)
    os.environ.update(stack_env(profile.name))
    os.environ["FEEDAPP_ENV_FILE"] = "/nonexistent"
    import django

    django.setup()
    # The drill's own Kafka clients (offsets, topics) would narrate every outage it causes.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    from django.conf import settings

    from bench.drills.scenarios import DRILLS, FULL_SCALE, run_drill
    from bench.drills.world import World
    from db.migrate import dbmate
    from stack.__main__ import start_all

    if args.drill not in DRILLS:
        parser.error(f"unknown drill {args.drill!r}; known: {', '.join(DRILLS)}")
    scale = FULL_SCALE[args.drill]
    changes = {k: getattr(args, k) for k in ("users", "polls", "votes", "rate", "streams")}
    scale = dataclasses.replace(scale, **{k: v for k, v in changes.items() if v is not None})
    raise_fd_limit()
    start_all(profile)
    dbmate(settings.DATABASE_URL, "up")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    world = World(
        profile,
        "feedapp.settings",
        PROJECT_ROOT / "bench" / "results" / f"drill-{args.drill}-{stamp}",
    )
    script, consumers, webs = DRILLS[args.drill]
    report = asyncio.run(run_drill(args.drill, world, scale, script, consumers, webs))
    print(f"$ .venv/bin/python -m bench.drills {' '.join(argv or sys.argv[1:])}")
    print(f"logs: {world.log_dir}")
    for line in report.lines():
        print(line)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
