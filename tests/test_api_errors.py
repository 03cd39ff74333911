"""Issue 12, items 4 to 6 and 8: every /api/ error is JSON and in the schema, validation
edges, authentication before validation, and the API's defences under a root path."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic
import pytest
from django.test import AsyncClient, override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.schemas import EMAIL_PATTERN, LOGIN_PATTERN, CreateUserPayload, LoginPayload
from polls import services as poll_services
from polls.schemas import TEXT_PATTERN, CreatePollPayload
from tests.accounts_client import AddressedClient, new_identity
from tests.asgi_client import asgi_request
from tests.poll_helpers import create_poll
from tests.users import client_for, make_user

JSON = "application/json"


def _is_json_detail(response: Any) -> bool:
    return response["Content-Type"].startswith(JSON) and "detail" in response.json()


# --- Item 4: JSON everywhere --------------------------------------------------------------


@pytest.mark.parametrize("debug", [False, True])
async def test_unknown_api_paths_are_json_404(debug: bool) -> None:
    with override_settings(DEBUG=debug):
        for path in ("/api/nope", "/api/poll/1/nope", "/api/", "/api/user/me/"):
            response = await AsyncClient().get(path)
            assert response.status_code == 404, path
            assert response.json() == {"detail": "Not Found"}


async def test_a_wrong_method_is_json_405_with_allow() -> None:
    for method, path in (("put", "/api/user/me"), ("get", "/api/user/login")):
        response = await getattr(AsyncClient(), method)(path)
        assert response.status_code == 405
        assert response.json() == {"detail": "Method Not Allowed"}
        assert response["Allow"]


@pytest.mark.parametrize("debug", [False, True])
async def test_a_crash_is_json_500_without_a_traceback(
    debug: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def crash(*args: object) -> None:
        raise RuntimeError("internal detail 1234")

    monkeypatch.setattr(poll_services, "get_feed_page", crash)
    with override_settings(DEBUG=debug):
        response = await AsyncClient(raise_request_exception=False).get("/api/poll/all")
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal Server Error"}
    assert b"1234" not in response.content and b"Traceback" not in response.content


async def test_an_unparseable_body_is_json_400() -> None:
    response = await AddressedClient().post_json("/api/user/login", "{not json")
    assert response.status_code == 400
    assert _is_json_detail(response)


async def test_every_error_a_route_can_give_is_in_the_schema() -> None:
    schema = (await AsyncClient().get("/api/openapi.json")).json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            statuses = set(operation["responses"])
            if "requestBody" in operation:
                assert {"400", "413", "415", "422"} <= statuses, (method, path)
            if operation.get("parameters"):
                assert "422" in statuses, (method, path)
    votes = schema["paths"]["/api/vote/{poll_id}"]["get"]["responses"]
    assert votes["422"]["content"][JSON]["schema"]["$ref"].endswith("/HTTPValidationError")


# --- Item 5: validation edges -------------------------------------------------------------


@pytest.mark.parametrize(
    "expires_at",
    [
        "9999-12-31T23:59:59-01:00",  # past UTC's year 9999: was a 500
        "9999-12-31T23:59:59Z",
        (datetime.now(UTC) + timedelta(days=3651)).isoformat(),
    ],
)
async def test_expiry_past_the_horizon_is_422(expires_at: str) -> None:
    client = client_for(await make_user())
    body = {"question": "Q?", "options": ["a", "b"], "expires_at": expires_at}
    response = await client.post("/api/poll/create", body, content_type=JSON)
    assert response.status_code == 422, response.content
    assert response.json()["detail"][0]["loc"] == ["body", "payload", "expires_at"]


async def test_expiry_is_normalised_to_utc() -> None:
    client = client_for(await make_user())
    poll = await create_poll(client, expires_at="2030-01-01T10:00:00+14:00")
    assert poll["expires_at"].replace("Z", "+00:00") == "2029-12-31T20:00:00+00:00"
    within = (datetime.now(UTC) + timedelta(days=3649)).replace(microsecond=0)
    assert (await create_poll(client, expires_at=within.isoformat()))["expires_at"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
async def test_a_body_not_sent_as_json_is_415(content_type: str) -> None:
    client = client_for(await make_user())
    body = json.dumps({"question": "Q?", "options": ["a", "b"]})
    response = await client.post("/api/poll/create", body, content_type=content_type)
    assert response.status_code == 415
    assert response.json() == {"detail": "Send the body as application/json"}
    # With a charset it is still JSON.
    ok = await client.post("/api/poll/create", body, content_type="application/json; charset=utf-8")
    assert ok.status_code == 201


async def test_ids_in_bodies_are_strict_integers() -> None:
    owner = await make_user()
    client = client_for(owner)
    poll = await create_poll(client, poll_perms="private")
    url = f"/api/poll/{poll['id']}/roles"
    for user_id in (True, "1", 1.5):
        response = await client.post(url, [{"role": "viewer", "user_id": user_id}], JSON)
        assert response.status_code == 422, user_id
    # 1.0 is an integer to JSON Schema, so it is one here too.
    response = await client.post(url, [{"role": "viewer", "user_id": float(owner.id)}], JSON)
    assert response.status_code == 200
    vote = {"poll_id": True, "vote_option_id": poll["option_ids"][0]}
    assert (await client.post("/api/vote/submit", vote, JSON)).status_code == 422


async def test_duplicate_grants_in_one_request_are_reported() -> None:
    owner, alice = await make_user(), await make_user()
    client = client_for(owner)
    poll = await create_poll(client, poll_perms="private")
    grants = [
        {"role": "viewer", "user_id": alice.id},
        {"role": "voter", "user_id": alice.id},
        {"role": "viewer", "user_id": alice.id},
    ]
    response = await client.post(f"/api/poll/{poll['id']}/roles", grants, JSON)
    assert response.status_code == 422
    [issue] = response.json()["detail"]
    assert "item 2 repeats item 0" in issue["msg"]


async def test_schema_declares_the_text_rules_the_server_applies() -> None:
    schema = (await AsyncClient().get("/api/openapi.json")).json()["components"]["schemas"]
    assert schema["CreateUserPayload"]["properties"]["email"]["pattern"] == EMAIL_PATTERN
    assert schema["LoginPayload"]["properties"]["username"]["pattern"] == LOGIN_PATTERN
    assert schema["CreatePollPayload"]["properties"]["question"]["pattern"] == TEXT_PATTERN
    response = await AddressedClient().post_json(
        "/api/user/register", new_identity() | {"email": "000"}
    )
    assert response.status_code == 422


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    email=st.from_regex(EMAIL_PATTERN, fullmatch=True).filter(lambda e: 3 <= len(e) <= 254),
    login=st.from_regex(LOGIN_PATTERN, fullmatch=True).filter(lambda e: len(e) <= 254),
    text=st.from_regex(TEXT_PATTERN, fullmatch=True).filter(lambda t: len(t) <= 200),
)
def test_values_matching_the_declared_patterns_are_accepted(
    email: str, login: str, text: str
) -> None:
    """What a client generates from the schema passes the server's validation."""
    CreateUserPayload(username="someone", email=email, password="long enough")
    LoginPayload(username=login, password="x")
    try:
        CreatePollPayload(question=text, options=[text, text])
    except pydantic.ValidationError as exc:  # only the surrogates no pattern can exclude
        assert all(error["msg"].endswith("valid Unicode text") for error in exc.errors())


# --- Item 6: authentication before validation ---------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/vote/submit", "/api/user/password", "/api/poll/create", "/api/poll/1/roles"]
)
async def test_anonymous_calls_with_bad_bodies_are_401(path: str) -> None:
    for body in ('{"poll_id": "x"}', "not json", "[]"):
        response = await AsyncClient().post(path, body, content_type=JSON)
        assert response.status_code == 401, (path, body, response.content)
    response = await AsyncClient().post(path, "x", content_type="text/plain")
    assert response.status_code == 401


# --- Item 8: the API's defences under a root path -----------------------------------------


async def test_the_origin_check_holds_under_a_root_path() -> None:
    evil = [(b"origin", b"https://evil.example")]
    status, body = await asgi_request("POST", "/api/user/logout", None, evil, "/feedapp")
    assert status == 403
    assert json.loads(body) == {"detail": "Origin not allowed"}
    status, _ = await asgi_request("POST", "/api/user/logout", root_path="/feedapp")
    assert status == 204
    status, body = await asgi_request("GET", "/api/nope", root_path="/feedapp")
    assert (status, json.loads(body)) == (404, {"detail": "Not Found"})
