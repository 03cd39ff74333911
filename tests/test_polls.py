"""Polls through the API: the original workflow, visibility and roles, grants, moderators."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from psycopg import errors as pg_errors

from db.pool import connection
from db.sql import execute, fetch_value
from polls.services import do_create_poll, do_grant_moderator
from tests.poll_helpers import create_poll, feed_ids, user_may
from tests.users import client_for, make_user


async def _visible_in_feed(client, poll_id: int) -> bool:
    # Starting just above the poll makes the answer independent of other tests' polls.
    return await feed_ids(client, before=poll_id + 1, limit=1) == [poll_id]


async def test_original_poll_workflow(api) -> None:
    body = {"question": "Tea or coffee?", "options": ["tea", "coffee"]}
    anonymous = await api.post("/api/poll/create", body, content_type="application/json")
    assert anonymous.status_code == 401
    assert anonymous.json() == {"detail": "Not authenticated"}

    owner = await make_user("owner")
    client = client_for(owner)
    plain = await create_poll(client, **body)
    assert plain == {
        "id": plain["id"],
        "question": "Tea or coffee?",
        "expires_at": None,
        "creator_name": owner.username,
        "options": ["tea", "coffee"],
        "option_ids": plain["option_ids"],
        "user_vote": None,
    }
    assert len(plain["option_ids"]) == 2
    expiry = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    expiring = await create_poll(client, question="Soon over?", expires_at=expiry.isoformat())
    assert datetime.fromisoformat(expiring["expires_at"]) == expiry

    listed = (await client.get("/api/poll/all")).json()
    assert [poll["id"] for poll in listed[:2]] == [expiring["id"], plain["id"]]
    assert listed[1] == {key: value for key, value in plain.items() if key != "user_vote"}
    assert (await client.get(f"/api/poll/{plain['id']}")).json() == plain

    other = client_for(await make_user("other"))
    refused = await other.delete(f"/api/poll/{expiring['id']}")
    assert refused.status_code == 403
    assert refused.json() == {"detail": "Not allowed"}
    assert (await api.delete(f"/api/poll/{expiring['id']}")).status_code == 401
    assert (await other.get(f"/api/poll/{expiring['id']}")).status_code == 200

    deleted = await client.delete(f"/api/poll/{plain['id']}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    again = await client.delete(f"/api/poll/{plain['id']}")
    assert again.status_code == 404
    assert again.json() == {"detail": "Poll not found"}
    assert (await client.get(f"/api/poll/{plain['id']}")).status_code == 404


@pytest.mark.parametrize(
    ("poll_perms", "everyone_role"),
    [("public_vote", "voter"), ("public_view", "viewer"), ("private", None)],
)
async def test_create_writes_options_grants_and_counts(poll_perms, everyone_role) -> None:
    owner = await make_user()
    poll = await create_poll(client_for(owner), options=["b", "a", "b"], poll_perms=poll_perms)
    assert poll["options"] == ["b", "a", "b"]
    async with connection() as conn:
        cur = await conn.execute(
            "SELECT id, position, text FROM vote_option WHERE poll_id = %s ORDER BY position",
            (poll["id"],),
        )
        assert await cur.fetchall() == [
            (poll["option_ids"][0], 0, "b"),
            (poll["option_ids"][1], 1, "a"),
            (poll["option_ids"][2], 2, "b"),
        ]
        cur = await conn.execute(
            "SELECT role::text, user_id, expires_at FROM poll_grant WHERE poll_id = %s"
            " ORDER BY role",
            (poll["id"],),
        )
        expected: list[tuple[str, int | None, None]] = [("creator", owner.id, None)]
        if everyone_role:
            expected.append((everyone_role, None, None))
        assert sorted(await cur.fetchall(), key=str) == sorted(expected, key=str)
        cur = await conn.execute(
            "SELECT vote_option_id, vote_count FROM vote_count WHERE poll_id = %s"
            " ORDER BY vote_option_id",
            (poll["id"],),
        )
        assert await cur.fetchall() == [(option_id, 0) for option_id in sorted(poll["option_ids"])]
        version = await fetch_value(
            conn, "SELECT version FROM poll_counts_version WHERE poll_id = %s", (poll["id"],)
        )
        assert version == 0


async def test_create_is_one_transaction() -> None:
    owner = await make_user()
    # The schema refuses the over-long option after the poll row was inserted.
    with pytest.raises(pg_errors.CheckViolation):
        await do_create_poll(owner, "Half done?", ["fine", "x" * 201])
    async with connection() as conn:
        left = await fetch_value(
            conn, "SELECT count(*) FROM poll WHERE creator_id = %s", (owner.id,)
        )
    assert left == 0


async def test_rights_follow_the_sharing_setting(api) -> None:
    owner = await make_user()
    stranger = await make_user()
    client = client_for(owner)
    public_vote = await create_poll(client, poll_perms="public_vote")
    public_view = await create_poll(client, poll_perms="public_view")
    private = await create_poll(client, poll_perms="private")

    for poll in (public_vote, public_view):
        assert (await api.get(f"/api/poll/{poll['id']}")).status_code == 200
        assert await _visible_in_feed(api, poll["id"])
    assert await user_may(stranger.id, "poll:vote", public_vote["id"])
    assert not await user_may(stranger.id, "poll:vote", public_view["id"])
    assert not await user_may(stranger.id, "poll:delete", public_vote["id"])
    assert not await user_may(stranger.id, "poll:assign_role", public_vote["id"])
    for right in ("poll:view", "poll:vote", "poll:delete", "poll:assign_role"):
        assert await user_may(owner.id, right, private["id"])
    assert (await client.get(f"/api/poll/{private['id']}")).status_code == 200
    assert await _visible_in_feed(client, private["id"])


async def test_private_poll_needs_a_grant(api) -> None:
    owner = await make_user("owner")
    friend = await make_user("friend")
    client, friend_client = client_for(owner), client_for(friend)
    poll = await create_poll(client, poll_perms="private")
    url = f"/api/poll/{poll['id']}"

    for someone in (api, friend_client):
        missing = await someone.get(url)
        assert missing.status_code == 404
        assert missing.json() == {"detail": "Poll not found"}
        assert not await _visible_in_feed(someone, poll["id"])
    assert (await friend_client.delete(url)).status_code == 404
    assert (await friend_client.get(f"{url}/roles")).status_code == 404

    granted = await client.post(
        f"{url}/roles", [{"role": "viewer", "user_id": friend.id}], content_type="application/json"
    )
    assert granted.status_code == 200
    assert granted.json() == []
    assert (await friend_client.get(url)).status_code == 200
    assert await _visible_in_feed(friend_client, poll["id"])
    assert not await user_may(friend.id, "poll:vote", poll["id"])
    assert (await api.get(url)).status_code == 404
    assert (await friend_client.delete(url)).status_code == 403

    await client.post(
        f"{url}/roles", [{"role": "voter", "user_id": friend.id}], content_type="application/json"
    )
    assert await user_may(friend.id, "poll:vote", poll["id"])
    roles = (await client.get(f"{url}/roles")).json()
    assert sorted(roles, key=lambda r: r["role"]) == [
        {"role": "creator", "username": owner.username, "user_id": owner.id},
        {"role": "viewer", "username": friend.username, "user_id": friend.id},
        {"role": "voter", "username": friend.username, "user_id": friend.id},
    ]


async def test_an_expired_grant_no_longer_counts() -> None:
    owner = await make_user()
    friend = await make_user()
    client, friend_client = client_for(owner), client_for(friend)
    poll = await create_poll(client, poll_perms="private")
    async with connection() as conn:
        await execute(
            conn,
            "INSERT INTO poll_grant (role, user_id, poll_id, granted_at, expires_at)"
            " VALUES ('voter', %(user_id)s, %(poll_id)s,"
            " now() - interval '2 hours', now() - interval '1 hour')",
            {"user_id": friend.id, "poll_id": poll["id"]},
        )
    assert not await user_may(friend.id, "poll:view", poll["id"])
    assert not await user_may(friend.id, "poll:vote", poll["id"])
    assert (await friend_client.get(f"/api/poll/{poll['id']}")).status_code == 404
    assert not await _visible_in_feed(friend_client, poll["id"])
    roles = (await client.get(f"/api/poll/{poll['id']}/roles")).json()
    assert [role["user_id"] for role in roles] == [owner.id]

    # The old period does not block a new grant of the same role.
    again = await client.post(
        f"/api/poll/{poll['id']}/roles",
        [{"role": "voter", "user_id": friend.id}],
        content_type="application/json",
    )
    assert again.json() == []
    assert await user_may(friend.id, "poll:vote", poll["id"])


async def test_moderator_may_view_and_delete_any_poll() -> None:
    owner = await make_user()
    moderator = await make_user("moderator")
    poll = await create_poll(client_for(owner), poll_perms="private")
    mod_client = client_for(moderator)
    assert (await mod_client.get(f"/api/poll/{poll['id']}")).status_code == 404

    assert await do_grant_moderator(moderator.id, granted_by=owner)
    assert not await do_grant_moderator(moderator.id), "an overlapping grant is refused"
    assert not await do_grant_moderator(2**62), "unknown user"
    assert (await mod_client.get(f"/api/poll/{poll['id']}")).status_code == 200
    assert await _visible_in_feed(mod_client, poll["id"])
    assert not await user_may(moderator.id, "poll:vote", poll["id"])
    assert (await mod_client.get(f"/api/poll/{poll['id']}/roles")).status_code == 403
    roles = (await client_for(owner).get(f"/api/poll/{poll['id']}/roles")).json()
    assert moderator.id not in [role["user_id"] for role in roles], "global grants not listed"

    assert (await mod_client.delete(f"/api/poll/{poll['id']}")).status_code == 204
    assert (await mod_client.get(f"/api/poll/{poll['id']}")).status_code == 404


async def test_an_expired_moderator_grant_no_longer_counts() -> None:
    owner = await make_user()
    former = await make_user("former")
    poll = await create_poll(client_for(owner), poll_perms="private")
    async with connection() as conn:
        await execute(
            conn,
            "INSERT INTO poll_grant (role, user_id, poll_id, granted_at, expires_at)"
            " VALUES ('moderator', %(user_id)s, NULL,"
            " now() - interval '2 days', now() - interval '1 day')",
            {"user_id": former.id},
        )
    assert (await client_for(former).get(f"/api/poll/{poll['id']}")).status_code == 404
    assert (await client_for(former).delete(f"/api/poll/{poll['id']}")).status_code == 404


async def test_grant_roles_reports_what_could_not_be_granted(api) -> None:
    owner = await make_user()
    alice, bob = await make_user("alice"), await make_user("bob")
    client = client_for(owner)
    poll = await create_poll(client, poll_perms="private")
    url = f"/api/poll/{poll['id']}/roles"
    unknown = 2**62

    first = await client.post(
        url,
        [
            {"role": "viewer", "user_id": alice.id},
            {"role": "voter", "user_id": unknown},
            {"role": "creator", "user_id": bob.id},
        ],
        content_type="application/json",
    )
    assert first.status_code == 200
    assert first.json() == [unknown]
    second = await client.post(
        url,
        [{"role": "viewer", "user_id": alice.id}, {"role": "voter", "user_id": alice.id}],
        content_type="application/json",
    )
    assert second.json() == [alice.id], "already a viewer; voter is new"
    assert (await client.post(url, [], content_type="application/json")).json() == []

    # A granted creator holds every right of the poll.
    bob_client = client_for(bob)
    assert (await bob_client.get(url)).status_code == 200
    alice_client = client_for(alice)
    for response in (
        await alice_client.get(url),
        await alice_client.post(
            url, [{"role": "voter", "user_id": alice.id}], content_type="application/json"
        ),
    ):
        assert response.status_code == 403
        assert response.json() == {"detail": "Not allowed"}
    assert (await api.get(url)).status_code == 401
    assert (await api.post(url, [], content_type="application/json")).status_code == 401
    assert (await bob_client.delete(f"/api/poll/{poll['id']}")).status_code == 204
    assert (await client.get(url)).status_code == 404
    assert (await client.post(url, [], content_type="application/json")).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"role": "viewer", "user_id": 1},
        [{"role": "moderator", "user_id": 1}],
        [{"role": "owner", "user_id": 1}],
        [{"role": "viewer"}],
        [{"role": "viewer", "user_id": "me"}],
        [{"role": "viewer", "user_id": 2**63}],
        [{"role": "viewer", "user_id": 0}],
        [{"role": "viewer", "user_id": 1, "expires_at": None}],
        [{"role": "viewer", "user_id": 1}] * 101,
    ],
    ids=[
        "not-a-list",
        "moderator",
        "unknown-role",
        "no-user",
        "user-not-int",
        "user-over-bigint",
        "user-zero",
        "unknown-field",
        "too-many",
    ],
)
async def test_grant_roles_validation(body) -> None:
    owner = await make_user()
    client = client_for(owner)
    poll = await create_poll(client)
    response = await client.post(
        f"/api/poll/{poll['id']}/roles", body, content_type="application/json"
    )
    assert response.status_code == 422, response.content
    assert response.json()["detail"][0]["loc"][0] == "body"


async def test_user_vote_is_the_callers_current_vote(api) -> None:
    owner, voter = await make_user(), await make_user()
    poll = await create_poll(client_for(owner))
    chosen = poll["option_ids"][1]
    async with connection() as conn:
        await execute(
            conn,
            "INSERT INTO vote (poll_id, user_id, vote_option_id, event_id, submitted_at)"
            " VALUES (%s, %s, %s, %s, now())",
            (poll["id"], voter.id, chosen, uuid.uuid4()),
        )
    url = f"/api/poll/{poll['id']}"
    assert (await client_for(voter).get(url)).json()["user_vote"] == chosen
    assert (await client_for(owner).get(url)).json()["user_vote"] is None
    assert (await api.get(url)).json()["user_vote"] is None
    summary = (await api.get("/api/poll/all", {"before": poll["id"] + 1, "limit": 1})).json()[0]
    assert "user_vote" not in summary


async def test_expired_polls_stay_viewable(api) -> None:
    poll = await create_poll(
        client_for(await make_user()),
        expires_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat(),
    )
    async with connection() as conn:
        await execute(
            conn,
            "UPDATE poll SET expires_at = now() - interval '1 minute' WHERE id = %s",
            (poll["id"],),
        )
    response = await api.get(f"/api/poll/{poll['id']}")
    assert response.status_code == 200
    assert datetime.fromisoformat(response.json()["expires_at"]) < datetime.now(UTC)
    assert await _visible_in_feed(api, poll["id"])


async def test_text_is_stored_and_returned_verbatim(api) -> None:
    question = 'It\'s "quoted" -- not a comment; /* nor this */ DROP TABLE poll; %s %(x)s 🗳️👍🏽'
    options = ["'; DELETE FROM vote_option; --", '"double" \\ back', "🎉 emoji 👨‍👩‍👧", "%% 100% _"]
    poll = await create_poll(client_for(await make_user()), question=question, options=options)
    assert (poll["question"], poll["options"]) == (question, options)
    fetched = (await api.get(f"/api/poll/{poll['id']}")).json()
    assert (fetched["question"], fetched["options"]) == (question, options)
    listed = (await api.get("/api/poll/all", {"before": poll["id"] + 1, "limit": 1})).json()
    assert (listed[0]["question"], listed[0]["options"]) == (question, options)
    async with connection() as conn:
        stored = await fetch_value(conn, "SELECT question FROM poll WHERE id = %s", (poll["id"],))
    assert stored == question


async def test_text_is_trimmed() -> None:
    poll = await create_poll(
        client_for(await make_user()), question="\t  Padded?  \n", options=[" a ", "b\u00a0 "]
    )
    assert (poll["question"], poll["options"]) == ("Padded?", ["a", "b"])


@pytest.mark.parametrize(
    ("path", "statuses"),
    [
        ("/api/poll/99999999999999999999999999", {422}),
        ("/api/poll/9223372036854775808", {422}),
        ("/api/poll/9223372036854775807", {404}),
        ("/api/poll/0", {422}),
        ("/api/poll/-1", {404, 422}),
        ("/api/poll/abc", {404, 422}),
        ("/api/poll/99999999999999999999999999/roles", {422}),
    ],
)
async def test_out_of_range_ids_are_a_client_error(path, statuses) -> None:
    client = client_for(await make_user())
    responses = [await client.get(path)]
    if not path.endswith("/roles"):
        responses.append(await client.delete(path))
    for response in responses:
        assert response.status_code in statuses, (path, response.status_code, response.content)
