"""The served OpenAPI schema is the committed docs/openapi.json: a contract change is
always a visible diff of that file (`make openapi` rewrites it)."""

from __future__ import annotations

import difflib
import json

from feedapp.openapi import SNAPSHOT, current_schema, render


async def test_served_schema_is_the_committed_snapshot(api) -> None:
    served = (await api.get("/api/openapi.json")).json()
    committed = json.loads(SNAPSHOT.read_text())
    if served != committed:
        diff = difflib.unified_diff(
            render(committed).splitlines(),
            render(served).splitlines(),
            "docs/openapi.json (committed)",
            "/api/openapi.json (served)",
            lineterm="",
        )
        shown = "\n".join(list(diff)[:80])
        raise AssertionError(
            "The API contract differs from docs/openapi.json. If the change is meant, run "
            f"`make openapi` and commit the file with it:\n{shown}"
        )


def test_make_openapi_writes_what_is_served() -> None:
    # The file is exactly what `make openapi` would write now, byte for byte.
    assert SNAPSHOT.read_text() == render(current_schema())
