"""The error answers every route can give, added to the OpenAPI schema in one place.

Routes declare the answers of their own logic (401, 403, 404, 409, 429...). These come
from the API's plumbing and hold for every route alike, so they are added here rather
than repeated on each: a route with a JSON body can answer 400 (not JSON), 413 (too
large), 415 (not sent as application/json) and 422 (invalid); a route with path or
query parameters can answer 422 (e.g. `/api/vote/abc`).
"""

from __future__ import annotations

from typing import Any

from feedapp.schemas import Detail, HTTPValidationError

_DETAIL = Detail.__name__
_VALIDATION = HTTPValidationError.__name__

BODY_ERRORS = {
    "400": "The body is not JSON",
    "413": "The body is larger than REQUEST_BODY_LIMIT_BYTES",
    "415": "The body was not sent as `application/json`",
    "422": "The request is not valid",
}
PARAMETER_ERRORS = {"422": "The request is not valid"}


def _answer(description: str, component: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{component}"}}},
    }


def add_error_responses(schema: dict[str, Any]) -> None:
    """Add the plumbing's error answers to every operation that can give them."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault(_DETAIL, Detail.model_json_schema())
    components.setdefault(
        _VALIDATION,
        HTTPValidationError.model_json_schema(ref_template="#/components/schemas/{model}"),
    )
    for definition in HTTPValidationError.model_json_schema().get("$defs", {}).values():
        components.setdefault(definition["title"], definition)
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            errors: dict[str, str] = {}
            if operation.get("parameters"):
                errors |= PARAMETER_ERRORS
            if operation.get("requestBody"):
                errors |= BODY_ERRORS
            responses = operation.setdefault("responses", {})
            for status, description in errors.items():
                component = _VALIDATION if status == "422" else _DETAIL
                responses.setdefault(status, _answer(description, component))
