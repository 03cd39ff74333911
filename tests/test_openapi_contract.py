"""The served OpenAPI schema keeps what generated clients depend on, checked on its own
(not against docs/openapi.json): the operation and component names of the first
backend, which its frontend imports; the fields it had as required; and which routes
take the session cookie, declared and enforced alike.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from accounts.auth import COOKIE_NAME
from tests.asgi_client import AsgiStream
from tests.polls import make_poll
from tests.users import client_for, make_user

# (method, path) -> operationId: the first backend's route names (FastAPI, operation_id =
# the route function's name), and the roles routes named in the same style.
ORIGINAL_OPERATIONS = {
    ("post", "/api/user/register"): "register_user",
    ("post", "/api/user/login"): "login",
    ("post", "/api/user/logout"): "logout",
    ("get", "/api/user/me"): "read_users_me",
    ("post", "/api/poll/create"): "create_poll",
    ("get", "/api/poll/all"): "get_all_polls",
    ("get", "/api/poll/{poll_id}"): "get_poll_by_id",
    ("delete", "/api/poll/{poll_id}"): "delete_poll_by_id",
    ("get", "/api/poll/{poll_id}/roles"): "get_poll_roles",
    ("post", "/api/poll/{poll_id}/roles"): "assign_poll_roles",
    ("post", "/api/vote/submit"): "submit_vote",
    ("get", "/api/vote/{poll_id}"): "get_votes_for_poll",
    ("get", "/api/vote/stream/{poll_id}"): "stream_vote_updates",
}

# Response components: property -> nullable, for every property the first backend had as
# required. Each stays required, and one that was not nullable stays so: a generated
# client must not turn `field: T` into `field?: T | null`.
RESPONSE_COMPONENTS: dict[str, dict[str, bool]] = {
    "UserInfo": {"id": False, "username": False, "email": False},
    "GetPollsRow": {
        "id": False,
        "question": False,
        "expires_at": True,
        "creator_name": False,
        "options": False,
        "option_ids": False,
    },
    "GetPollRow": {
        "id": False,
        "question": False,
        "expires_at": True,
        "creator_name": False,
        "options": False,
        "option_ids": False,
        "user_vote": True,
    },
    "GetVoteCountsRow": {"vote_option_id": False, "vote_count": False},
    "GetActivePollRolesRow": {"role": False, "username": False},
    "ValidationError": {"loc": False, "msg": False, "type": False},
    "Detail": {"detail": False},
}
# Request bodies: the properties a client must send.
REQUEST_COMPONENTS = {
    "CreateUserPayload": {"username", "email", "password"},
    "LoginPayload": {"username", "password"},
    "CreatePollPayload": {"question", "options"},
    "VotePayload": {"vote_option_id", "poll_id"},
    "GiveAccessPayload": {"role", "user_id"},
}

SESSION: list[dict[str, list[str]]] = [{"SessionCookie": []}]
SESSION_OR_ANONYMOUS: list[dict[str, list[str]]] = [{"SessionCookie": []}, {}]
NEEDS_SESSION = {
    "read_users_me",
    "logout_everywhere",
    "change_password",
    "create_poll",
    "delete_poll_by_id",
    "get_poll_roles",
    "assign_poll_roles",
    "submit_vote",
    "report_poll",
}
READS_SESSION = {"get_all_polls", "get_poll_by_id", "get_votes_for_poll", "stream_vote_updates"}

SNAKE_CASE = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")


@pytest.fixture
async def schema(api) -> dict[str, Any]:
    response = await api.get("/api/openapi.json")
    assert response.status_code == 200
    return response.json()


def operations(schema: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """operationId -> (method, path, operation), over the whole schema."""
    found: dict[str, tuple[str, str, dict[str, Any]]] = {}
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            op_id = operation["operationId"]
            assert op_id not in found, f"operationId {op_id} is used twice"
            found[op_id] = (method, path, operation)
    return found


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_schema(operation: dict[str, Any], status: str) -> Any:
    return operation["responses"][status]["content"]["application/json"]["schema"]


def body_schema(operation: dict[str, Any]) -> Any:
    return operation["requestBody"]["content"]["application/json"]["schema"]


async def test_operations_keep_the_original_route_names(schema) -> None:
    served = {(method, path): op_id for op_id, (method, path, _) in operations(schema).items()}
    for key, op_id in ORIGINAL_OPERATIONS.items():
        assert served.get(key) == op_id, key


async def test_every_operation_has_a_chosen_snake_case_id(schema) -> None:
    # The API refuses to make up an id (feedapp.api.FeedAppAPI), so a route without one
    # would not get this far; this pins the style for the ones given.
    for op_id, (method, path, _) in operations(schema).items():
        assert SNAKE_CASE.fullmatch(op_id), f"{method.upper()} {path}: {op_id!r}"


def test_a_route_without_operation_id_fails_the_schema() -> None:
    from ninja import Router
    from ninja.errors import ConfigError

    from feedapp.api import FeedAppAPI

    router = Router()

    @router.get("/nameless")
    def nameless(request: Any) -> None:
        """A route that forgot its operation_id."""

    api = FeedAppAPI(urls_namespace="nameless-test")
    api.add_router("", router)
    with pytest.raises(ConfigError, match=r"test_openapi_contract\.nameless has no operation_id"):
        api.get_openapi_schema(path_prefix="")


async def test_component_names_are_the_original_ones(schema) -> None:
    ops = {op_id: operation for op_id, (_, _, operation) in operations(schema).items()}

    assert body_schema(ops["register_user"]) == ref("CreateUserPayload")
    assert json_schema(ops["register_user"], "201") == ref("UserInfo")
    assert body_schema(ops["login"]) == ref("LoginPayload")
    assert json_schema(ops["read_users_me"], "200") == ref("UserInfo")
    assert body_schema(ops["create_poll"]) == ref("CreatePollPayload")
    assert json_schema(ops["create_poll"], "201") == ref("GetPollRow")
    assert json_schema(ops["get_all_polls"], "200")["items"] == ref("GetPollsRow")
    assert json_schema(ops["get_poll_by_id"], "200") == ref("GetPollRow")
    assert body_schema(ops["submit_vote"]) == ref("VotePayload")
    assert json_schema(ops["get_votes_for_poll"], "200")["items"] == ref("GetVoteCountsRow")
    assert json_schema(ops["get_poll_roles"], "200")["items"] == ref("GetActivePollRolesRow")
    assert body_schema(ops["assign_poll_roles"])["items"] == ref("GiveAccessPayload")

    components = schema["components"]["schemas"]
    assert components["HTTPValidationError"]["properties"]["detail"]["items"] == ref(
        "ValidationError"
    )


async def test_errors_use_one_detail_component_and_422_the_validation_one(schema) -> None:
    for op_id, (_, _, operation) in operations(schema).items():
        has_input = bool(operation.get("parameters")) or "requestBody" in operation
        assert ("422" in operation["responses"]) == has_input, op_id
        for status in operation["responses"]:
            if int(status) < 400 or op_id == "check_readiness":  # 503 names what is down
                continue
            expected = "HTTPValidationError" if status == "422" else "Detail"
            assert json_schema(operation, status) == ref(expected), (op_id, status)


async def test_fields_the_original_required_stay_required(schema) -> None:
    components = schema["components"]["schemas"]
    for name, fields in RESPONSE_COMPONENTS.items():
        component = components[name]
        for field, nullable in fields.items():
            assert field in component.get("required", []), f"{name}.{field} is optional"
            prop = component["properties"][field]
            alternatives = prop.get("anyOf", [prop])
            is_nullable = any(alt.get("type") == "null" for alt in alternatives)
            assert is_nullable == nullable, f"{name}.{field}: nullable is {is_nullable}"
    for name, sent in REQUEST_COMPONENTS.items():
        assert set(components[name]["required"]) == sent, name
        assert set(components[name]["properties"]) >= sent, name


async def test_the_session_cookie_is_a_security_scheme_on_the_routes_using_it(schema) -> None:
    scheme = schema["components"]["securitySchemes"]["SessionCookie"]
    assert scheme == {"type": "apiKey", "in": "cookie", "name": COOKIE_NAME}
    for op_id, (_, _, operation) in operations(schema).items():
        security = operation.get("security")
        if op_id in NEEDS_SESSION:
            assert security == SESSION, op_id
        elif op_id in READS_SESSION:
            assert security == SESSION_OR_ANONYMOUS, op_id
        else:
            assert security is None, op_id


def concrete(path: str, poll_id: int) -> str:
    return path.replace("{poll_id}", str(poll_id))


async def test_routes_declared_to_need_the_session_refuse_anonymous_callers(schema) -> None:
    poll = await make_poll(await make_user())
    anonymous = client_for(None)
    required = [
        (method, path)
        for method, path, operation in operations(schema).values()
        if operation.get("security") == SESSION
    ]
    assert len(required) == len(NEEDS_SESSION)
    for method, path in required:
        # No body: the session is checked before the body is read.
        response = await getattr(anonymous, method)(concrete(path, poll.id))
        assert response.status_code == 401, (method, path, response.content)
        assert response.json() == {"detail": "Not authenticated"}


async def test_routes_declared_to_read_the_session_answer_by_it(schema) -> None:
    # A private poll: only its creator's session shows it; anonymous callers get 404.
    creator = await make_user()
    poll = await make_poll(creator, perms="private")
    reading = [
        (op_id, path)
        for op_id, (_, path, op) in operations(schema).items()
        if op.get("security") == SESSION_OR_ANONYMOUS
    ]
    assert {op_id for op_id, _ in reading} == READS_SESSION
    for op_id, path in reading:
        url = concrete(path, poll.id)
        if op_id == "stream_vote_updates":
            stream = await AsgiStream(url, creator).open()
            try:
                assert stream.status == 200
            finally:
                await stream.disconnect()
            assert (await client_for(None).get(url)).status_code == 404
        elif op_id == "get_all_polls":
            mine = (await client_for(creator).get(url, {"limit": 200})).json()
            theirs = (await client_for(None).get(url, {"limit": 200})).json()
            assert poll.id in {p["id"] for p in mine}
            assert poll.id not in {p["id"] for p in theirs}
        else:
            assert (await client_for(creator).get(url)).status_code == 200, op_id
            assert (await client_for(None).get(url)).status_code == 404, op_id
