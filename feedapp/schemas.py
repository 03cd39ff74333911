"""The API's error bodies, shared by every router: `{"detail": str}` and the 422 list.

The class names are the OpenAPI component names, which generated clients turn into type
names: `HTTPValidationError` and `ValidationError` are FastAPI's, as the first backend
served them (see docs/openapi.json).
"""

from __future__ import annotations

from ninja import Schema


class Detail(Schema):
    """Every error other than a validation error."""

    detail: str


class ValidationError(Schema):
    """One issue of a 422 answer: where (`loc`), what (`msg`) and its kind (`type`)."""

    type: str
    loc: list[str | int]
    msg: str


class HTTPValidationError(Schema):
    """A 422 answer: what was wrong with the request, one issue per field."""

    detail: list[ValidationError]
