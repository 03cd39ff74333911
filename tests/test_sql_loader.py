"""The named-statement loader (pure logic)."""

import re

import pytest

from db.sql import QUERIES_DIR, parse_queries

_NAMED = re.compile(r"^--\s*name:\s*(\w+)\s*\n(.*)$", re.MULTILINE)


def test_parses_named_blocks() -> None:
    text = "-- file comment\n\n-- name: first\nSELECT 1;\n\n-- name: second\nSELECT\n  2\n"
    assert parse_queries(text) == {"first": "SELECT 1", "second": "SELECT\n  2"}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("SELECT 1;\n-- name: a\nSELECT 2", "before the first"),
        ("-- name: a\n\n-- name: b\nSELECT 1", "empty"),
        ("-- name: a\nSELECT 1\n-- name: a\nSELECT 2", "twice"),
    ],
)
def test_rejects_malformed_files(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_queries(text)


def test_every_named_statement_says_what_it_does() -> None:
    # A `--` description line right after each `-- name:` line, as in every query file.
    undescribed = [
        f"{path.name}: {name}"
        for path in sorted(QUERIES_DIR.glob("*.sql"))
        for name, first_line in _NAMED.findall(path.read_text(encoding="utf-8"))
        if not first_line.startswith("--")
    ]
    assert undescribed == []
