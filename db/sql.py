"""Named SQL statements from `db/queries/<app>.sql`, and the helpers that run them.

A file holds blocks that each start with a `-- name: <identifier>` line; the block's
text up to the next name is the statement. Parameters are always bound
(`%(name)s`), never formatted into the text.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, LiteralString, TypeVar, cast

import psycopg
from psycopg.rows import class_row

QUERIES_DIR = Path(__file__).resolve().parent / "queries"
_NAME_LINE = re.compile(r"^--\s*name:\s*([A-Za-z_][A-Za-z0-9_]*)\s*$", re.MULTILINE)

Row = TypeVar("Row")
Params = Mapping[str, Any] | Sequence[Any] | None


def parse_queries(text: str, source: str = "<string>") -> dict[str, LiteralString]:
    """Split `text` into its named statements."""
    parts = _NAME_LINE.split(text)
    if parts[0].strip() and not all(
        line.startswith("--") or not line.strip() for line in parts[0].splitlines()
    ):
        raise ValueError(f"{source}: SQL before the first `-- name:` line")
    queries: dict[str, LiteralString] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        statement = body.strip().rstrip(";").strip()
        if not statement:
            raise ValueError(f"{source}: statement {name!r} is empty")
        if name in queries:
            raise ValueError(f"{source}: statement {name!r} is defined twice")
        # Statements come only from files in this repository, reviewed like code.
        queries[name] = cast(LiteralString, statement)
    return queries


@functools.cache
def queries(module: str) -> Mapping[str, LiteralString]:
    """The named statements of `db/queries/<module>.sql`."""
    path = QUERIES_DIR / f"{module}.sql"
    return parse_queries(path.read_text(encoding="utf-8"), str(path))


def all_queries() -> dict[str, Mapping[str, LiteralString]]:
    """Every query file's statements, by module name (used by the schema test)."""
    return {path.stem: queries(path.stem) for path in sorted(QUERIES_DIR.glob("*.sql"))}


async def fetch_one(
    conn: psycopg.AsyncConnection, query: LiteralString, params: Params, row: type[Row]
) -> Row | None:
    async with conn.cursor(row_factory=class_row(row)) as cur:
        await cur.execute(query, params)
        return await cur.fetchone()


async def fetch_all(
    conn: psycopg.AsyncConnection, query: LiteralString, params: Params, row: type[Row]
) -> list[Row]:
    async with conn.cursor(row_factory=class_row(row)) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()


def fetch_all_sync(
    conn: psycopg.Connection, query: LiteralString, params: Params, row: type[Row]
) -> list[Row]:
    """`fetch_all` for a synchronous connection (the vote consumer's)."""
    with conn.cursor(row_factory=class_row(row)) as cur:
        cur.execute(query, params)
        return cur.fetchall()


async def fetch_value(conn: psycopg.AsyncConnection, query: LiteralString, params: Params) -> Any:
    """The first column of the first row, or None."""
    async with conn.cursor() as cur:
        await cur.execute(query, params)
        found = await cur.fetchone()
        return found[0] if found else None


async def execute(conn: psycopg.AsyncConnection, query: LiteralString, params: Params) -> int:
    """Run a statement; the number of rows it touched."""
    async with conn.cursor() as cur:
        await cur.execute(query, params)
        return cur.rowcount
