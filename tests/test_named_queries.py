"""Every named SQL statement still fits the migrated schema (what sqlc checked at build)."""

from __future__ import annotations

import re

import pytest

from db.pool import connection
from db.sql import all_queries

_PARAM = re.compile(r"%\((\w+)\)s")
STATEMENTS = [
    (module, name, statement)
    for module, named in all_queries().items()
    for name, statement in named.items()
]


def _positional(statement: str) -> str:
    """`%(name)s` parameters as `$n`, the form PREPARE takes (repeats share a number)."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    return _PARAM.sub(number, statement)


@pytest.mark.parametrize(
    "statement", [s for *_, s in STATEMENTS], ids=[f"{m}.{n}" for m, n, _ in STATEMENTS]
)
async def test_statement_prepares_against_the_schema(statement: str) -> None:
    async with connection() as conn:
        # Parsed, resolved and typed by the server, never run; rolled back either way.
        await conn.execute(f"PREPARE named_query_check AS {_positional(statement)}")
        await conn.execute("DEALLOCATE named_query_check")
        await conn.rollback()
