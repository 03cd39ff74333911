"""Run dbmate against a database: the only way the schema changes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def dbmate_binary() -> str:
    found = shutil.which("dbmate") or str(Path(sys.executable).parent / "dbmate")
    if not Path(found).exists():
        raise RuntimeError("dbmate not found: install the dev dependencies (`uv sync`)")
    return found


def dbmate(database_url: str, *args: str) -> None:
    """`dbmate <args>` on `database_url` with the project's migrations; raises on failure."""
    url = database_url
    if "sslmode=" not in url and ("127.0.0.1" in url or "localhost" in url):
        url += ("&" if "?" in url else "?") + "sslmode=disable"
    subprocess.run(  # noqa: S603  (argv list, no shell; the URL comes from settings)
        [
            dbmate_binary(),
            "--url",
            url,
            "--migrations-dir",
            str(MIGRATIONS_DIR),
            "--no-dump-schema",
            "--wait",
            "--wait-timeout",
            "30s",
            *args,
        ],
        check=True,
    )
