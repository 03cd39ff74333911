"""The accounts API over HTTP: sessions, conflicts, validation and body limits."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings

from accounts.auth import COOKIE_NAME
from tests.accounts_client import AddressedClient, new_identity, register
from tests.asgi_client import asgi_request

REGISTER = "/api/user/register"
LOGIN = "/api/user/login"
LOGOUT = "/api/user/logout"
ME = "/api/user/me"


def _assert_session_cookie(response: Any) -> None:
    cookie = response.cookies[COOKIE_NAME]
    assert cookie.value
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["path"] == "/"
    assert int(cookie["max-age"]) == settings.JWT_TTL_SECONDS


async def test_register_me_logout_login_by_username_and_by_email() -> None:
    identity = new_identity()
    client = AddressedClient()

    registered = await client.post_json(REGISTER, identity)
    assert registered.status_code == 201, registered.content
    info = registered.json()
    assert set(info) == {"id", "username", "email"}
    assert (info["username"], info["email"]) == (identity["username"], identity["email"])
    _assert_session_cookie(registered)

    me = await client.get(ME)
    assert me.status_code == 200
    assert me.json() == info

    logged_out = await client.post(LOGOUT)
    assert logged_out.status_code == 204
    cleared = logged_out.cookies[COOKIE_NAME]
    assert (cleared.value, int(cleared["max-age"])) == ("", 0)

    anonymous = await client.get(ME)
    assert anonymous.status_code == 401
    assert anonymous.json() == {"detail": "Not authenticated"}

    by_username = await client.post_json(
        LOGIN, {"username": identity["username"].upper(), "password": identity["password"]}
    )
    assert by_username.status_code == 204, by_username.content
    assert by_username.content == b""
    _assert_session_cookie(by_username)
    assert (await client.get(ME)).json() == info

    other = AddressedClient()
    by_email = await other.post_json(
        LOGIN, {"username": identity["email"].upper(), "password": identity["password"]}
    )
    assert by_email.status_code == 204, by_email.content
    _assert_session_cookie(by_email)
    assert (await other.get(ME)).json() == info


async def test_cookie_is_secure_when_configured() -> None:
    identity = new_identity()
    client = AddressedClient()
    await register(client, identity)
    with override_settings(AUTH_COOKIE_SECURE=True):
        response = await client.post_json(LOGIN, _login(identity))
        logged_out = await client.post(LOGOUT)
    assert response.status_code == 204
    assert response.cookies[COOKIE_NAME]["secure"] is True
    assert logged_out.cookies[COOKIE_NAME]["secure"] is True


def _login(identity: dict[str, str]) -> dict[str, str]:
    return {"username": identity["username"], "password": identity["password"]}


async def test_wrong_password_and_unknown_user_get_the_same_401() -> None:
    identity = new_identity()
    client = AddressedClient()
    await register(client, identity)
    wrong = await client.post_json(LOGIN, _login(identity) | {"password": "not-the-password"})
    unknown = await client.post_json(LOGIN, _login(new_identity()))
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == {"detail": "Invalid username or password"}
    assert COOKIE_NAME not in wrong.cookies
    assert COOKIE_NAME not in unknown.cookies


async def test_taken_username_or_email_in_another_case_is_409() -> None:
    identity = new_identity()
    client = AddressedClient()
    await register(client, identity)
    fresh = new_identity()

    same_name = await client.post_json(REGISTER, fresh | {"username": identity["username"].upper()})
    assert same_name.status_code == 409
    assert same_name.json() == {"detail": "Username is already taken"}
    assert COOKIE_NAME not in same_name.cookies

    same_email = await client.post_json(REGISTER, fresh | {"email": identity["email"].upper()})
    assert same_email.status_code == 409
    assert same_email.json() == {"detail": "Email is already registered"}

    # Neither attempt created anything: the fresh identity is still free.
    assert (await client.post_json(REGISTER, fresh)).status_code == 201


INVALID_REGISTRATIONS = [
    ("username", "ab", "string_too_short"),
    ("username", "a" * 33, "string_too_long"),
    ("username", "with space", "string_pattern_mismatch"),
    ("username", "ünïcode", "string_pattern_mismatch"),
    ("username", "name@host", "string_pattern_mismatch"),
    ("username", 12345, "string_type"),
    ("username", None, "string_type"),
    ("email", "not-an-email", "string_pattern_mismatch"),
    ("email", "no-dot@localhost", "string_pattern_mismatch"),
    ("email", "two@@example.com", "string_pattern_mismatch"),
    ("email", "space in@example.com", "string_pattern_mismatch"),
    ("email", "x@-bad-.example.com", "string_pattern_mismatch"),
    ("email", "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 63, "string_too_long"),
    ("email", ["list@example.com"], "string_type"),
    ("password", "seven77", "string_too_short"),
    ("password", "p" * 129, "string_too_long"),
    ("password", 12345678, "string_type"),
    ("password", "\ud800 lone surrogate", "string_unicode"),
]


@pytest.mark.parametrize(("field", "value", "error_type"), INVALID_REGISTRATIONS)
async def test_each_invalid_field_is_422(field: str, value: Any, error_type: str) -> None:
    response = await AddressedClient().post_json(REGISTER, new_identity() | {field: value})
    assert response.status_code == 422, response.content
    issues = response.json()["detail"]
    assert len(issues) == 1, issues
    issue = issues[0]
    assert set(issue) == {"type", "loc", "msg"}
    assert issue["loc"][0] == "body"
    assert issue["loc"][-1] == field
    assert issue["type"] == error_type
    assert isinstance(issue["msg"], str) and issue["msg"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, {"username": "missing", "email": "missing", "password": "missing"}),
        ({"password": "long-enough"}, {"username": "missing", "email": "missing"}),
        (new_identity() | {"is_staff": True}, {"is_staff": "extra_forbidden"}),
    ],
    ids=["empty", "missing-fields", "unknown-field"],
)
async def test_missing_and_unknown_fields_are_422(
    body: dict[str, Any], expected: dict[str, str]
) -> None:
    response = await AddressedClient().post_json(REGISTER, body)
    assert response.status_code == 422
    found = {issue["loc"][-1]: issue["type"] for issue in response.json()["detail"]}
    assert found == expected
    assert all(issue["loc"][0] == "body" for issue in response.json()["detail"])


@pytest.mark.parametrize(
    ("body", "field", "error_type"),
    [
        ({"username": "someone"}, "password", "missing"),
        ({"username": "", "password": "x"}, "username", "string_too_short"),
        ({"username": "nul\x00byte", "password": "x"}, "username", "string_pattern_mismatch"),
        ({"username": "line\nbreak", "password": "x"}, "username", "string_pattern_mismatch"),
        ({"username": "u" * 255, "password": "x"}, "username", "string_too_long"),
        ({"username": "someone", "password": "p" * 129}, "password", "string_too_long"),
        ({"username": "someone", "password": "x", "remember": True}, "remember", "extra_forbidden"),
    ],
)
async def test_invalid_login_bodies_are_422(
    body: dict[str, Any], field: str, error_type: str
) -> None:
    response = await AddressedClient().post_json(LOGIN, body)
    assert response.status_code == 422, response.content
    issues = response.json()["detail"]
    assert [(issue["loc"][0], issue["loc"][-1], issue["type"]) for issue in issues] == [
        ("body", field, error_type)
    ]


@pytest.mark.parametrize(
    "body",
    [
        "{not json",
        '{"username": "a", ',
        "[]",
        '"just a string"',
        "null",
        "12",
        '{"username": {"nested": {"deeper": []}}, "email": 1.5, "password": true}',
        '{"username": 1e999999, "email": "x", "password": "y"}',
        '{"username": ' + "9" * 5000 + "}",
        "[" * 20000 + "]" * 20000,
        b"\xff\xfe\x00garbage",
        '{"username": "a"}{"username": "b"}',
    ],
    ids=[
        "truncated",
        "unterminated",
        "array",
        "string",
        "null",
        "number",
        "wrong-types",
        "huge-float",
        "huge-int",
        "deep-nesting",
        "not-utf8",
        "two-documents",
    ],
)
@pytest.mark.parametrize("path", [REGISTER, LOGIN])
async def test_malformed_json_is_4xx(path: str, body: str | bytes) -> None:
    response = await AddressedClient().post_json(path, body)
    assert 400 <= response.status_code < 500, (response.status_code, response.content)
    assert "detail" in response.json()


async def test_form_encoded_body_is_4xx() -> None:
    response = await AddressedClient().post(
        REGISTER, "username=a&password=b", content_type="application/x-www-form-urlencoded"
    )
    assert 400 <= response.status_code < 500
    assert "detail" in response.json()


def _padded(body: dict[str, Any], size: int) -> bytes:
    """`body` as JSON, padded with whitespace to exactly `size` bytes."""
    text = json.dumps(body).encode()
    return text[:-1] + b" " * (size - len(text)) + b"}"


async def test_oversized_body_is_413() -> None:
    limit = settings.REQUEST_BODY_LIMIT_BYTES
    invalid = {"username": "x", "email": "x", "password": "x"}
    client = AddressedClient()

    at_limit = await client.post_json(REGISTER, _padded(invalid, limit))
    assert at_limit.status_code == 422  # read and validated: the limit itself is allowed

    over = await client.post_json(REGISTER, _padded(invalid, limit + 1))
    assert over.status_code == 413
    assert over.json() == {"detail": f"Request body larger than {limit} bytes"}

    with override_settings(REQUEST_BODY_LIMIT_BYTES=100, DATA_UPLOAD_MAX_MEMORY_SIZE=100):
        small = await client.post_json(LOGIN, _padded({"username": "a", "password": "b"}, 101))
    assert small.status_code == 413


async def _asgi_post(path: str, chunks: list[bytes]) -> tuple[int, bytes]:
    """POST `chunks` straight through the ASGI app, without a Content-Length (as chunked)."""
    return await asgi_request("POST", path, chunks, [(b"content-type", b"application/json")])


async def test_oversized_body_without_length_is_413() -> None:
    chunk = b" " * 16384
    status, body = await _asgi_post(LOGIN, [b"{", *[chunk] * 5, b"}"])
    assert status == 413
    assert json.loads(body) == {
        "detail": f"Request body larger than {settings.REQUEST_BODY_LIMIT_BYTES} bytes"
    }

    # A small body without a length is read and handled normally.
    status, body = await _asgi_post(LOGIN, [b'{"username": ', b'"x"}'])
    assert status == 422
    assert json.loads(body)["detail"][0]["loc"][-1] == "password"


async def test_boundary_values_are_accepted() -> None:
    client = AddressedClient()
    longest = {
        "username": ("L_" + uuid.uuid4().hex + "." * 32)[:32],
        "email": f"{uuid.uuid4().hex}@example.com",
        "password": "p" * 128,
    }
    shortest = {
        "username": uuid.uuid4().hex[:3],
        "email": f"{uuid.uuid4().hex}@ex.io",
        "password": "8 chars!",
    }
    for identity in (longest, shortest):
        info = await register(client, identity)
        assert info["username"] == identity["username"]


async def test_openapi_documents_the_accounts_routes(api) -> None:
    schema = (await api.get("/api/openapi.json")).json()
    paths = schema["paths"]
    body_errors = {"400", "413", "415", "422"}
    assert set(paths["/api/user/register"]["post"]["responses"]) == {"201", "409", "429"} | (
        body_errors
    )
    assert set(paths["/api/user/login"]["post"]["responses"]) == {"204", "401", "429"} | (
        body_errors
    )
    assert "/api/user/logout" in paths
    assert set(paths["/api/user/me"]["get"]["responses"]) == {"200", "401"}
    components = schema["components"]["schemas"]
    assert set(components["UserInfo"]["properties"]) == {"id", "username", "email"}
    assert set(components["CreateUserPayload"]["properties"]) == {"username", "email", "password"}
    assert set(components["LoginPayload"]["properties"]) == {"username", "password"}
    assert (await api.get("/api/docs")).status_code == 200
