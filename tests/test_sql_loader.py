"""The named-statement loader (pure logic)."""

import pytest

from db.sql import parse_queries


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
