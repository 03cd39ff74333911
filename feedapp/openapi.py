"""The API's OpenAPI schema as a reviewed file: docs/openapi.json.

`make openapi` (`python -m feedapp.openapi`) rewrites the file from the routes;
tests/test_openapi_snapshot.py fails while the served schema differs from it, so every
change of the contract shows up as a diff of that file in review.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

SNAPSHOT = Path(__file__).resolve().parent.parent / "docs" / "openapi.json"


def render(schema: dict[str, Any]) -> str:
    """The schema as the snapshot file holds it: ninja's key order, two-space indent."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def current_schema() -> dict[str, Any]:
    """The schema the code serves at /api/openapi.json, as plain JSON data (Django set up)."""
    from ninja.responses import NinjaJSONEncoder

    from feedapp.api import api

    schema: dict[str, Any] = json.loads(json.dumps(api.get_openapi_schema(), cls=NinjaJSONEncoder))
    return schema


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "feedapp.settings")
    import django

    django.setup()
    text = render(current_schema())
    if SNAPSHOT.exists() and SNAPSHOT.read_text() == text:
        print(f"{SNAPSHOT}: unchanged")
        return 0
    SNAPSHOT.write_text(text)
    print(f"{SNAPSHOT}: written; review the diff and commit it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
