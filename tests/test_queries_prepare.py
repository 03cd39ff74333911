"""Every named SQL statement prepares against the migrated schema (what sqlc gave at build).

A statement is prepared on the server without being executed, so a schema change that
breaks one fails here, whether or not any other test runs it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import psycopg
import pytest
from django.conf import settings
from psycopg.pq import ExecStatus

from db.sql import all_queries

_PLACEHOLDER = re.compile(r"%%|%\((\w+)\)[sbt]|%[sbt]")


def to_server_params(statement: str) -> str:
    """psycopg's `%(name)s` placeholders as PostgreSQL's `$n` (same name, same n), `%%` as `%`."""
    numbers: dict[str, int] = {}

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "%%":
            return "%"
        name = match.group(1)
        if name is None:
            raise ValueError(f"positional placeholder {match.group(0)!r}: name every parameter")
        return f"${numbers.setdefault(name, len(numbers) + 1)}"

    return _PLACEHOLDER.sub(replace, statement)


def _statements() -> list[tuple[str, str, str]]:
    return [
        (module, name, statement)
        for module, named in all_queries().items()
        for name, statement in named.items()
    ]


@pytest.fixture(scope="module")
def conn() -> Iterator[psycopg.Connection]:
    with psycopg.connect(settings.DATABASE_URL, autocommit=True) as connection:
        yield connection


def prepare_error(conn: psycopg.Connection, name: str, statement: str) -> str | None:
    """None when the server prepares `statement`, else its error message."""
    result = conn.pgconn.prepare(name.encode(), to_server_params(statement).encode())
    if result.status != ExecStatus.COMMAND_OK:
        return (result.error_message or b"").decode(errors="replace")
    conn.pgconn.exec_(f"DEALLOCATE {name}".encode())
    return None


def test_there_are_statements_to_check() -> None:
    found = {(module, name) for module, name, _ in _statements()}
    assert found, "no named statements found in db/queries"
    assert ("polls", "feed_page") in found
    assert ("accounts", "get_user_by_id") in found


@pytest.mark.parametrize(
    ("module", "name", "statement"),
    _statements(),
    ids=[f"{module}.{name}" for module, name, _ in _statements()],
)
def test_statement_prepares(conn, module, name, statement) -> None:
    assert prepare_error(conn, f"check_{module}_{name}", statement) is None


def test_a_broken_statement_is_caught(conn) -> None:
    error = prepare_error(conn, "check_broken", "SELECT no_such_column FROM poll WHERE id = %(id)s")
    assert error is not None
    assert "no_such_column" in error


def test_placeholders_become_numbered_parameters() -> None:
    assert (
        to_server_params("SELECT %(a)s, %(b)s, %(a)s, '100%%' WHERE x = %(b)s AND y = %(c)b")
        == "SELECT $1, $2, $1, '100%' WHERE x = $2 AND y = $3"
    )
    with pytest.raises(ValueError, match="positional"):
        to_server_params("SELECT %s")
