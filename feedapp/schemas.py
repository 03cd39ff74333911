"""The API's error bodies, shared by every router: `{"detail": str}` and the 422 list."""

from __future__ import annotations

from ninja import Schema


class Detail(Schema):
    """Every error other than a validation error."""

    detail: str


class ValidationIssue(Schema):
    type: str
    loc: list[str | int]
    msg: str


class ValidationDetail(Schema):
    """A 422 answer: what was wrong with the request, one issue per field."""

    detail: list[ValidationIssue]
