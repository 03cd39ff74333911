"""The poll routes in the OpenAPI schema, with API.md's paths and field names."""

from __future__ import annotations


async def test_poll_routes_and_shapes_are_documented(api) -> None:
    schema = (await api.get("/api/openapi.json")).json()
    paths = schema["paths"]
    assert set(paths["/api/poll/create"]) == {"post"}
    assert set(paths["/api/poll/all"]) == {"get"}
    assert set(paths["/api/poll/{poll_id}"]) == {"get", "delete"}
    assert set(paths["/api/poll/{poll_id}/roles"]) == {"get", "post"}
    assert set(paths["/api/poll/create"]["post"]["responses"]) == {
        "201",
        "400",
        "401",
        "413",
        "415",
        "422",
    }
    assert set(paths["/api/poll/{poll_id}"]["delete"]["responses"]) == {
        "204",
        "401",
        "403",
        "404",
        "422",
    }
    feed_params = {p["name"] for p in paths["/api/poll/all"]["get"]["parameters"]}
    assert feed_params == {"limit", "before"}

    components = schema["components"]["schemas"]

    def fields(name: str) -> set[str]:
        return set(components[name]["properties"])

    assert fields("CreatePollPayload") == {"question", "options", "expires_at", "poll_perms"}
    assert set(components["CreatePollPayload"]["required"]) == {"question", "options"}
    summary = {"id", "question", "expires_at", "creator_name", "options", "option_ids"}
    assert fields("GetPollsRow") == summary
    assert fields("GetPollRow") == summary | {"user_vote"}
    assert fields("GiveAccessPayload") == {"role", "user_id"}
    assert fields("GetActivePollRolesRow") == {"role", "username", "user_id"}
    grantable = components["GiveAccessPayload"]["properties"]["role"]["enum"]
    assert grantable == ["creator", "voter", "viewer"]
