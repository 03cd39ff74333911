"""`manage.py dbmate <args>`: dbmate on the configured database with db/migrations."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from db.migrate import dbmate


class Command(BaseCommand):
    help = "Run dbmate (up, status, rollback, new NAME, ...) against DATABASE_URL."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("args", nargs="+", help="dbmate arguments, e.g. `up`")

    def handle(self, *args: str, **options: Any) -> None:
        dbmate(settings.DATABASE_URL, *args)
