"""`manage.py seed_demo [--live RATE --seconds N]`: demo users, polls, grants and votes."""

from __future__ import annotations

import asyncio
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from db.pool import close_async_pool
from db.valkey import close_async_valkey
from demo.seed import LiveTally, SeedReport, cast_live_votes, seed
from votes.producer import close_producer

MAX_RATE = 50.0  # votes per second; each demo user may cast 10 per second
MAX_SECONDS = 3600.0


class Command(BaseCommand):
    help = (
        "Create demo users (their passwords are printed once, when created), polls of each "
        "visibility, grants and votes; running it again changes nothing. --live RATE then "
        "keeps changing votes at RATE per second for --seconds."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--password",
            help="password for the demo users this run creates (default: a random one each)",
        )
        parser.add_argument(
            "--live",
            type=float,
            metavar="RATE",
            help=f"after seeding, change votes at RATE per second (at most {MAX_RATE:.0f})",
        )
        parser.add_argument(
            "--seconds",
            type=float,
            default=60.0,
            help=f"how long --live runs (default 60, at most {MAX_SECONDS:.0f})",
        )
        parser.add_argument(
            "--allow-production",
            action="store_true",
            help="seed even though FEEDAPP_MODE=production (demo accounts on a real site)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.PRODUCTION and not options["allow_production"]:
            raise CommandError("FEEDAPP_MODE=production: pass --allow-production to seed anyway")
        rate, seconds = options["live"], options["seconds"]
        if rate is not None and not 0 < rate <= MAX_RATE:
            raise CommandError(f"--live must be above 0 and at most {MAX_RATE:.0f}")
        if not 0 < seconds <= MAX_SECONDS:
            raise CommandError(f"--seconds must be above 0 and at most {MAX_SECONDS:.0f}")
        try:
            asyncio.run(self._run(options["password"], rate, seconds))
        finally:
            close_producer()

    async def _run(self, password: str | None, rate: float | None, seconds: float) -> None:
        try:
            report = await seed(password)
            self._print_report(report)
            if rate is not None:
                self.stdout.write(f"casting votes at {rate:g}/s for {seconds:g} s...")
                tally = await cast_live_votes(report, rate, seconds, self._print_tally)
                self._print_tally(tally)
        finally:
            await close_async_pool()
            await close_async_valkey()

    def _print_report(self, report: SeedReport) -> None:
        self.stdout.write("users:")
        for seeded in report.users:
            password = (
                f"password {seeded.password}" if seeded.password else "existed (password kept)"
            )
            self.stdout.write(f"  {seeded.user.username:12} {password}")
        self.stdout.write("polls:")
        for poll in report.polls:
            state = "created" if poll.created else "existed"
            self.stdout.write(
                f"  #{poll.id:<6} {poll.spec.perms:12} {state:8} {poll.spec.question}"
                f"  (/api/poll/{poll.id}, live: /api/vote/stream/{poll.id})"
            )
        self.stdout.write(
            f"grants added: {report.grants_added}; votes sent: {report.votes_sent}, "
            f"already recorded: {report.votes_present}"
        )
        self.stdout.write("nothing changed" if not report.changed else "seeded")
        if report.votes_sent:
            self.stdout.write("(counts change once the vote consumer applies the votes)")

    def _print_tally(self, tally: LiveTally) -> None:
        refused = ", ".join(f"{n} got {status}" for status, n in sorted(tally.refused.items()))
        self.stdout.write(f"votes cast: {tally.cast}; refused: {refused or 'none'}")
