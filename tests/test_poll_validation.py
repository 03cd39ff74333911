"""Every invalid poll body field and feed parameter is a 422 in ninja's shape, never a 500."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.poll_helpers import create_poll
from tests.users import client_for, make_user

VALID = {"question": "Which one?", "options": ["this", "that"]}
PAST = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"question": ""}, "question"),
        ({"question": "   \t\n"}, "question"),
        ({"question": "q" * 501}, "question"),
        ({"question": 42}, "question"),
        ({"question": None}, "question"),
        ({"question": "nul \x00 inside"}, "question"),
        ({"question": "lone \ud800 surrogate"}, "question"),
        ({"options": ["only one"]}, "options"),
        ({"options": []}, "options"),
        ({"options": [f"o{i}" for i in range(21)]}, "options"),
        ({"options": ["fine", ""]}, "options"),
        ({"options": ["fine", "   "]}, "options"),
        ({"options": ["fine", "o" * 201]}, "options"),
        ({"options": ["fine", 7]}, "options"),
        ({"options": "this,that"}, "options"),
        ({"options": ["fine", "nul \x00"]}, "options"),
        ({"expires_at": PAST}, "expires_at"),
        ({"expires_at": "next tuesday"}, "expires_at"),
        ({"expires_at": "0001-01-01T00:00:00Z"}, "expires_at"),
        ({"poll_perms": "secret"}, "poll_perms"),
        ({"poll_perms": None}, "poll_perms"),
        ({"colour": "blue"}, "colour"),
    ],
    ids=lambda value: value if isinstance(value, str) else next(iter(value)),
)
async def test_invalid_create_poll_fields(change, field) -> None:
    client = client_for(await make_user())
    body = {**VALID, **change}
    response = await client.post("/api/poll/create", body, content_type="application/json")
    assert response.status_code == 422, response.content
    errors = response.json()["detail"]
    assert {error["loc"][0] for error in errors} == {"body"}
    assert field in {str(part) for error in errors for part in error["loc"]}
    assert all({"type", "loc", "msg"} <= error.keys() for error in errors)


@pytest.mark.parametrize("missing", ["question", "options"])
async def test_required_create_poll_fields(missing) -> None:
    client = client_for(await make_user())
    body = {key: value for key, value in VALID.items() if key != missing}
    response = await client.post("/api/poll/create", body, content_type="application/json")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == missing


async def test_limits_that_are_valid() -> None:
    client = client_for(await make_user())
    poll = await create_poll(
        client, question="q" * 500, options=["o" * 200] * 20, poll_perms="public_view"
    )
    assert len(poll["question"]) == 500
    assert poll["options"] == ["o" * 200] * 20
    naive = (datetime.now(UTC) + timedelta(days=1)).replace(tzinfo=None, microsecond=0)
    poll = await create_poll(client, expires_at=naive.isoformat())
    assert datetime.fromisoformat(poll["expires_at"]) == naive.replace(tzinfo=UTC)


async def test_malformed_json_is_a_client_error() -> None:
    client = client_for(await make_user())
    response = await client.post("/api/poll/create", "{not json", content_type="application/json")
    assert 400 <= response.status_code < 500


@pytest.mark.parametrize(
    "query",
    [
        {"limit": 0},
        {"limit": 201},
        {"limit": -5},
        {"limit": "ten"},
        {"limit": 10**30},
        {"before": "latest"},
        {"before": 2**63},
        {"before": 0},
    ],
    ids=str,
)
async def test_invalid_feed_parameters(api, query) -> None:
    response = await api.get("/api/poll/all", query)
    assert response.status_code == 422, response.content
    assert response.json()["detail"][0]["loc"] == ["query", next(iter(query))]


async def test_feed_parameter_bounds_are_accepted(api) -> None:
    for query in ({"limit": 1}, {"limit": 200}, {"before": 1}, {"before": 2**63 - 1}):
        response = await api.get("/api/poll/all", query)
        assert response.status_code == 200, (query, response.content)
        assert len(response.json()) <= query.get("limit", 50)
