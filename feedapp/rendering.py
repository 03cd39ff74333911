"""JSON in and out of the API, with orjson.

`dumps` writes what django-ninja's renderer wrote (Django's JSON encoder: dates and
times as ISO 8601 with milliseconds and `Z` for UTC, UUIDs and decimals as strings),
compactly. The hot routes answer with `json_answer`: their rows are built by our own SQL
and typed as dataclasses, so validating them again against the response schema (which
ninja does for every returned object) only cost time; the schema stays declared on the
route for the OpenAPI document. Request bodies are still validated by ninja and
pydantic, after `JsonParser` parsed them.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from django.http import HttpRequest, HttpResponse
from ninja.parser import Parser
from ninja.renderers import BaseRenderer
from ninja.responses import NinjaJSONEncoder

CONTENT_TYPE = "application/json; charset=utf-8"
# Dates and times go through Django's encoder (its format, not orjson's); dict keys that
# are not strings are written as strings, as the json module does.
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS
_fallback = NinjaJSONEncoder()


def _default(value: Any) -> Any:
    return _fallback.default(value)


def dumps(value: Any) -> bytes:
    """`value` as compact JSON (dataclasses as objects of their fields, in order)."""
    return orjson.dumps(value, default=_default, option=_OPTIONS)


def json_answer(value: Any, status: int = 200) -> HttpResponse:
    """An API answer with `value` as its JSON body, written as is (no re-validation)."""
    return HttpResponse(dumps(value), status=status, content_type=CONTENT_TYPE)


def raw_json_answer(body: bytes, status: int = 200) -> HttpResponse:
    """An API answer whose body is JSON already (e.g. counts as cached in Valkey)."""
    return HttpResponse(body, status=status, content_type=CONTENT_TYPE)


class JsonParser(Parser):
    """Request bodies parsed by orjson; what it refuses goes to the json module, which
    accepts a little more (lone surrogates, NaN, UTF-16), so that such a body is still
    answered as before (a 422 naming the field, not a 400)."""

    def parse_body(self, request: HttpRequest) -> dict[str, Any]:
        try:
            parsed: dict[str, Any] = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            parsed = json.loads(request.body)
        return parsed


class JsonRenderer(BaseRenderer):
    """What ninja renders itself (validated answers, errors), written by orjson."""

    media_type = "application/json"
    charset = "utf-8"

    def render(self, request: HttpRequest, data: Any, *, response_status: int) -> bytes:
        return dumps(data)
