"""What every router's schemas share: the error bodies (`{"detail": str}` and the 422
list) and the check that client text can be stored.

The class names are the OpenAPI component names, which generated clients turn into type
names: `HTTPValidationError` and `ValidationError` are FastAPI's, as the first backend
served them (see docs/openapi.json).
"""

from __future__ import annotations

from ninja import Schema
from pydantic import BeforeValidator

# The OpenAPI description of the header sent with 429 and 503.
RETRY_AFTER_HEADER = {
    "description": "Seconds to wait before sending the request again",
    "schema": {"type": "integer"},
}


def valid_unicode(value: str) -> str:
    """`value`, if it is text every database, hasher and log line can encode.

    JSON may carry lone surrogates ("\ud800"): valid Python text that is not UTF-8.
    They are refused when the request is validated (422), not met later as a 500.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


def _json_integer(value: object) -> int:
    # JSON Schema's "integer": a number without a fraction (1.0 is one); not `true`, not
    # "1". pydantic would take all of them, and `true` as 1.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be an integer")
        return int(value)
    return value


# Makes an `int` field take what the schema's "integer" means, in a JSON body. Put it
# after the field's constraints (`Annotated[int, Field(ge=1), JSON_INTEGER]`), so that
# they stay plain schema keywords.
JSON_INTEGER = BeforeValidator(_json_integer)


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
