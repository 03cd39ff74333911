"""Moderation in the Django admin, against the real stack: sign-in, bans, roles, deletions.

The admin's views use Django's own database connection, so these tests need the
`django_db` mark; rows are made through the services (the psycopg pool), committed,
and unique per test.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.admin.models import CHANGE, DELETION
from django.core.exceptions import ValidationError
from django.test import override_settings

from accounts import throttle
from accounts.models import User
from accounts.services import LOGIN_BY_ACCOUNT, do_deactivate_user
from db.pool import connection
from db.sql import fetch_value
from polls.services import do_grant_moderator
from tests.accounts_client import AddressedClient, new_identity, register
from tests.admin_client import AdminClient, admin_log, make_admin
from tests.commands import manage
from tests.poll_helpers import user_may
from tests.polls import db_counts, grant, make_poll, submit_vote
from tests.users import client_for, make_user
from tests.waiting import eventually
from votes.counts import counts_key

pytestmark = pytest.mark.django_db

USERS = "/admin/accounts/user/"
POLLS = "/admin/polls/poll/"
GRANTS = "/admin/polls/pollgrant/"


def listed(page) -> set[int]:
    """The ids of the rows a changelist page shows (its action checkboxes)."""
    return {int(i) for i in re.findall(rb'name="_selected_action" value="(\d+)"', page.content)}


async def api_login(identity: dict[str, str]) -> int:
    body = {"username": identity["username"], "password": identity["password"]}
    return (await AddressedClient().post_json("/api/user/login", body)).status_code


# --- Sign-in ------------------------------------------------------------------------------


async def test_only_staff_reach_the_admin() -> None:
    response = await AdminClient().get("/admin/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/admin/"

    identity = new_identity()
    info = await register(AddressedClient(), identity)
    client = AdminClient()
    response = await client.sign_in(identity["username"], identity["password"])
    assert response.status_code == 200  # the form again, with its error
    assert b"for a staff account" in response.content
    assert (await client.get("/admin/")).status_code == 302

    # Moderators who are not staff moderate through the API.
    assert await do_grant_moderator(info["id"])
    response = await client.sign_in(identity["username"], identity["password"])
    assert b"for a staff account" in response.content
    assert (await client.get(USERS)).status_code == 302


async def test_a_registered_user_made_staff_signs_in_with_the_api_password() -> None:
    root = await make_admin(superuser=True)
    identity = new_identity()
    info = await register(AddressedClient(), identity)
    change = f"{USERS}{info['id']}/change/"

    response = await root.client.post(change, {"is_staff": "on"})
    assert response.status_code == 302, response.content

    staff = AdminClient()
    # By email, in another letter case: as the API's login takes it.
    response = await staff.sign_in(identity["email"].upper(), identity["password"])
    assert response.status_code == 302, response.content
    assert response["Location"] == "/admin/"
    index = await staff.get("/admin/")
    assert index.status_code == 200
    assert b"Users" in index.content
    assert b"Polls" in index.content
    assert await api_login(identity) == 204

    # Staff moderate; only superusers change who is staff.
    page = await staff.get(change)
    assert page.status_code == 200
    assert b'name="is_staff"' not in page.content
    assert (await staff.post(change, {})).status_code == 403
    assert b'name="is_staff"' in (await root.client.get(change)).content

    history = await root.client.get(f"{USERS}{info['id']}/history/")
    assert b"Changed Staff." in history.content
    assert [
        (line.action_flag, line.user_id) for line in await admin_log("accounts", "user", info["id"])
    ] == [(CHANGE, root.user.id)]


async def test_the_admin_sign_in_shares_the_apis_login_throttle() -> None:
    staff = await make_admin()
    client = AdminClient()
    try:
        with override_settings(LOGIN_FAILURES_LIMIT=2):
            for _ in range(2):
                response = await client.sign_in(staff.user.username, "wrong password")
                assert response.status_code == 200
            response = await client.sign_in(staff.user.username, staff.password)
            assert response.status_code == 200  # refused: too many failures for this account
        assert (await client.get("/admin/")).status_code == 302
    finally:
        # The test Valkey outlives the run, and the next run's users get the same ids.
        await throttle.clear(LOGIN_BY_ACCOUNT, f"id:{staff.user.id}")


async def test_password_hashes_are_never_shown() -> None:
    root = await make_admin(superuser=True)
    page = await root.client.get(f"{USERS}{root.user.id}/change/")
    assert page.status_code == 200
    assert b"argon2" not in page.content
    assert b'name="password"' not in page.content


# --- Users --------------------------------------------------------------------------------


@pytest.mark.usefixtures("vote_topic")
async def test_a_ban_in_the_admin_ends_the_session_and_the_votes() -> None:
    root = await make_admin(superuser=True)
    identity = new_identity()
    victim = AddressedClient()
    info = await register(victim, identity)
    poll = await make_poll(await make_user())

    async def me() -> int:
        return (await victim.get("/api/user/me")).status_code

    with override_settings(AUTH_USER_CACHE_SECONDS=1.0):
        assert await me() == 200  # cached by this process now
        assert await submit_vote(victim, poll.id, poll.option_ids[0]) == 201

        # The action asks first: the page names the user, and nothing happens yet.
        page = await root.client.action(USERS, "deactivate", [info["id"]])
        assert page.status_code == 200
        assert identity["username"].encode() in page.content
        assert b'name="confirm_ban"' in page.content
        assert await me() == 200
        # Confirmed as a browser would: the page's own form, posted back as it is.
        fields: dict[str, list[str]] = {}
        for name, value in re.findall(
            rb'<input type="(?:hidden|submit)" name="([^"]+)" value="([^"]*)"', page.content
        ):
            fields.setdefault(name.decode(), []).append(value.decode())
        assert fields["_selected_action"] == [str(info["id"])]
        assert fields["action"] == ["deactivate"]
        response = await root.client.post(USERS, fields)
        assert response.status_code == 302
        delay = settings.AUTH_USER_CACHE_SECONDS + 10
        assert await eventually(me, 401, within=delay) == 401
        assert await submit_vote(victim, poll.id, poll.option_ids[1]) == 401
        assert await api_login(identity) == 401

        history = await root.client.get(f"{USERS}{info['id']}/history/")
        assert b"Deactivated (banned)." in history.content

        response = await root.client.action(USERS, "reactivate", [info["id"]])
        assert response.status_code == 302
        # The ban ended the old session for good; signing in again works.
        assert await me() == 401
        body = {"username": identity["username"], "password": identity["password"]}
        assert (await victim.post_json("/api/user/login", body)).status_code == 204
        assert await me() == 200
        assert await submit_vote(victim, poll.id, poll.option_ids[1]) == 201

    lines = await admin_log("accounts", "user", info["id"])
    assert [(line.user_id, line.change_message) for line in lines] == [
        (root.user.id, "Deactivated (banned)."),
        (root.user.id, "Reactivated."),
    ]


async def test_staff_ban_neither_themselves_nor_a_superuser() -> None:
    staff, root = await make_admin(), await make_admin(superuser=True)
    page = await staff.client.action(USERS, "deactivate", [staff.user.id, root.user.id])
    assert b"None of the selected users can be banned by you" in page.content
    assert b'name="confirm_ban"' not in page.content
    response = await staff.client.action(
        USERS, "deactivate", [staff.user.id, root.user.id], confirm_ban="Yes, ban them"
    )
    assert response.status_code == 302
    assert b"Not yours to ban" in (await staff.client.get(USERS)).content
    async with connection() as conn:
        active = await fetch_value(
            conn,
            'SELECT bool_and(is_active) FROM "user" WHERE id = ANY(%s)',
            ([staff.user.id, root.user.id],),
        )
    assert active is True
    assert await admin_log("accounts", "user", root.user.id) == []


async def test_users_are_searched_and_filtered() -> None:
    staff = await make_admin()
    tag = f"find{uuid.uuid4().hex[:6]}"
    active, banned = await make_user(tag), await make_user(tag)
    await do_deactivate_user(banned.id)

    async def ids(**query: str) -> set[int]:
        page = await staff.client.get(USERS, query)
        assert page.status_code == 200
        return listed(page)

    assert await ids(q=tag) == {active.id, banned.id}
    assert await ids(q=active.email.upper()) == {active.id}
    assert await ids(q=tag, is_active__exact="0") == {banned.id}
    assert await ids(q=tag, is_active__exact="1") == {active.id}
    assert await ids(q=tag, is_staff__exact="1") == set()
    assert staff.user.id in await ids(q=staff.user.username, is_staff__exact="1")


# --- The moderator role -------------------------------------------------------------------


async def test_the_moderator_role_lets_a_user_delete_others_polls_until_revoked() -> None:
    staff = await make_admin()
    moderator, owner = await make_user(), await make_user()
    first, second = await make_poll(owner), await make_poll(owner)
    as_moderator = client_for(moderator)
    assert (await as_moderator.delete(f"/api/poll/{first.id}")).status_code == 403

    form = await staff.client.action(USERS, "grant_moderator", [moderator.id])
    assert form.status_code == 200
    assert b"Grant the moderator role" in form.content
    assert (await as_moderator.delete(f"/api/poll/{first.id}")).status_code == 403

    response = await staff.client.action(USERS, "grant_moderator", [moderator.id], apply="Grant")
    assert response.status_code == 302
    assert moderator.id in listed(await staff.client.get(USERS, {"moderator": "yes"}))
    assert (await as_moderator.delete(f"/api/poll/{first.id}")).status_code == 204

    response = await staff.client.action(USERS, "revoke_moderator", [moderator.id])
    assert response.status_code == 302
    assert (await as_moderator.delete(f"/api/poll/{second.id}")).status_code == 403
    assert moderator.id not in listed(await staff.client.get(USERS, {"moderator": "yes"}))

    # Revoking ended the grant; the row stays as history.
    async with connection() as conn:
        ended = await fetch_value(
            conn,
            "SELECT array_agg(expires_at <= now()) FROM poll_grant"
            " WHERE user_id = %s AND role = 'moderator' AND poll_id IS NULL",
            (moderator.id,),
        )
    assert ended == [True]
    lines = await admin_log("accounts", "user", moderator.id)
    assert [line.change_message for line in lines] == [
        "Granted the moderator role (until revoked).",
        "Revoked the moderator role.",
    ]


async def test_a_moderator_grant_may_end_at_a_set_time() -> None:
    staff = await make_admin()
    user = await make_user()
    response = await staff.client.action(
        USERS,
        "grant_moderator",
        [user.id],
        apply="Grant",
        expires_at_0="2000-01-01",
        expires_at_1="00:00:00",
    )
    assert response.status_code == 200
    assert b"Must be in the future." in response.content

    until = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    response = await staff.client.action(
        USERS,
        "grant_moderator",
        [user.id],
        apply="Grant",
        expires_at_0=until.strftime("%Y-%m-%d"),
        expires_at_1=until.strftime("%H:%M:%S"),
    )
    assert response.status_code == 302
    async with connection() as conn:
        ends = await fetch_value(
            conn,
            "SELECT array_agg(expires_at) FROM poll_grant"
            " WHERE user_id = %s AND role = 'moderator'",
            (user.id,),
        )
    assert ends == [until]


# --- Polls --------------------------------------------------------------------------------


@pytest.mark.usefixtures("vote_consumer")
async def test_a_polls_page_shows_live_counts_and_its_grants(valkey_client) -> None:
    staff = await make_admin()
    owner, voter = await make_user(), await make_user()
    poll = await make_poll(owner, perms="private")
    await grant(voter, poll, "voter")
    a, b, c = poll.option_ids
    assert await submit_vote(client_for(voter), poll.id, b) == 201
    assert await eventually(lambda: db_counts(poll.id), {a: 0, b: 1, c: 0}) == {a: 0, b: 1, c: 0}

    async def shown_counts() -> list[str]:
        page = await staff.client.get(f"{POLLS}{poll.id}/change/")
        assert page.status_code == 200
        return re.findall(r'<td class="field-votes">\s*<p>(\d+)</p>', page.content.decode())

    assert await shown_counts() == ["0", "1", "0"]
    valkey_client.delete(counts_key(poll.id))
    assert await shown_counts() == ["0", "1", "0"]  # rebuilt from PostgreSQL
    assert valkey_client.exists(counts_key(poll.id)) == 1

    page = (await staff.client.get(f"{POLLS}{poll.id}/change/")).content.decode()
    assert owner.username in page
    assert voter.username in page
    assert "everyone" not in page  # private: no grant to everyone


async def test_polls_are_searched_and_filtered() -> None:
    staff = await make_admin()
    creator = await make_user("pollster")
    soon = datetime.now(UTC) + timedelta(seconds=1)
    open_poll = await make_poll(creator)
    private = await make_poll(creator, perms="private")
    expired = await make_poll(creator, expires_at=soon)
    await asyncio.sleep(1.1)

    async def ids(**query: str) -> set[int]:
        page = await staff.client.get(POLLS, query)
        assert page.status_code == 200
        return listed(page)

    everything = {open_poll.id, private.id, expired.id}
    assert await ids(q=creator.username) == everything
    assert await ids(q=creator.username.upper(), expired="yes") == {expired.id}
    assert await ids(q=creator.username, expired="no") == {open_poll.id, private.id}
    assert await ids(q=creator.username, poll_perms__exact="private") == {private.id}
    assert {open_poll.id, private.id, expired.id} <= await ids(q="Test question")


async def test_deleting_a_poll_in_the_admin_goes_through_the_service(
    valkey_client, deleted_polls
) -> None:
    staff = await make_admin()  # staff, not superuser: deleting polls is theirs
    owner = await make_user()
    poll = await make_poll(owner)
    assert (await client_for(None).get(f"/api/vote/{poll.id}")).status_code == 200
    assert valkey_client.exists(counts_key(poll.id)) == 1

    url = f"{POLLS}{poll.id}/delete/"
    confirm = await staff.client.get(url)
    assert confirm.status_code == 200
    assert b"Are you sure" in confirm.content
    assert b"Cannot delete" not in confirm.content
    assert deleted_polls == []

    response = await staff.client.post(url, {"post": "yes"})
    assert response.status_code == 302
    assert response["Location"] == POLLS
    assert deleted_polls == [poll.id]
    assert valkey_client.hget(counts_key(poll.id), "counts") is None  # a tombstone
    assert (await client_for(owner).get(f"/api/poll/{poll.id}")).status_code == 404
    lines = await admin_log("polls", "poll", poll.id)
    assert [(line.action_flag, line.user_id) for line in lines] == [(DELETION, staff.user.id)]


async def test_bulk_delete_asks_first_then_deletes_each_through_the_service(
    deleted_polls,
) -> None:
    staff = await make_admin()
    owner = await make_user()
    doomed = [(await make_poll(owner)).id for _ in range(2)]
    kept = await make_poll(owner)

    confirm = await staff.client.action(POLLS, "delete_selected", doomed)
    assert confirm.status_code == 200
    assert b"Are you sure" in confirm.content
    assert b"Cannot delete" not in confirm.content
    assert deleted_polls == []

    response = await staff.client.action(POLLS, "delete_selected", doomed, post="yes")
    assert response.status_code == 302
    assert sorted(deleted_polls) == sorted(doomed)
    for poll_id in doomed:
        assert (await client_for(owner).get(f"/api/poll/{poll_id}")).status_code == 404
        assert len(await admin_log("polls", "poll", poll_id)) == 1
    assert (await client_for(owner).get(f"/api/poll/{kept.id}")).status_code == 200


async def test_polls_are_not_edited_in_the_admin() -> None:
    root = await make_admin(superuser=True)
    poll = await make_poll(await make_user())
    page = await root.client.get(f"{POLLS}{poll.id}/change/")
    assert page.status_code == 200
    assert b'name="question"' not in page.content
    assert (await root.client.post(f"{POLLS}{poll.id}/change/", {})).status_code == 403
    assert (await root.client.get(f"{POLLS}add/")).status_code == 403


# --- Grants -------------------------------------------------------------------------------


async def test_revoking_a_grant_ends_it_and_keeps_it() -> None:
    staff = await make_admin()
    owner, viewer = await make_user(), await make_user()
    poll = await make_poll(owner, perms="private")
    await grant(viewer, poll, "viewer")
    async with connection() as conn:
        cur = await conn.execute(
            "SELECT role::text, id FROM poll_grant WHERE poll_id = %s", (poll.id,)
        )
        grant_ids = dict(await cur.fetchall())
    assert await user_may(viewer.id, "poll:view", poll.id)

    assert await listed_grants(staff.client, poll=str(poll.id)) == set(grant_ids.values())
    assert await listed_grants(staff.client, poll=str(poll.id), role__exact="viewer") == {
        grant_ids["viewer"]
    }
    assert grant_ids["viewer"] in await listed_grants(
        staff.client, user=str(viewer.id), state="active", scope="user"
    )

    response = await staff.client.action(GRANTS, "revoke", [grant_ids["viewer"]])
    assert response.status_code == 302
    assert not await user_may(viewer.id, "poll:view", poll.id)
    assert await listed_grants(staff.client, poll=str(poll.id), state="ended") == {
        grant_ids["viewer"]
    }
    # Revoking again changes nothing: the grant is no longer in force.
    await staff.client.action(GRANTS, "revoke", [grant_ids["viewer"]])
    lines = await admin_log("polls", "pollgrant", grant_ids["viewer"])
    assert [(line.user_id, line.change_message) for line in lines] == [
        (staff.user.id, "Revoked: the grant ended now.")
    ]
    history = await staff.client.get(f"{GRANTS}{grant_ids['viewer']}/history/")
    assert b"Revoked: the grant ended now." in history.content

    # Never a hard delete, not even for a superuser.
    root = await make_admin(superuser=True)
    assert (await root.client.get(f"{GRANTS}{grant_ids['viewer']}/delete/")).status_code == 403
    response = await root.client.action(GRANTS, "delete_selected", [grant_ids["viewer"]])
    assert await listed_grants(root.client, poll=str(poll.id)) == set(grant_ids.values())


async def listed_grants(client: AdminClient, **query: str) -> set[int]:
    page = await client.get(GRANTS, query)
    assert page.status_code == 200
    return listed(page)


# --- Accounts made outside the API --------------------------------------------------------


async def test_accounts_made_by_the_user_manager_follow_the_apis_rules() -> None:
    create = sync_to_async(User.objects.create_user)
    name = f"made_{uuid.uuid4().hex[:8]}"
    with pytest.raises(ValidationError, match="username"):
        await create("a b", f"{name}@example.com", "long enough")
    with pytest.raises(ValidationError, match="email"):
        await create(name, "not-an-email", "long enough")
    with pytest.raises(ValidationError, match="password"):
        await create(name, f"{name}@example.com", "short")
    with pytest.raises(ValidationError, match="password is required"):
        await create(name, f"{name}@example.com", None)
    taken = await make_user()
    with pytest.raises(ValidationError, match="Email is already registered"):
        await create(name, taken.email.upper(), "long enough")

    user = await create(name, f"{name}@example.com", "long enough")
    assert (user.username, user.is_active, user.is_staff, user.is_superuser) == (
        name,
        True,
        False,
        False,
    )
    assert user.password.startswith("argon2$argon2id$")
    assert await api_login({"username": name, "password": "long enough"}) == 204


def test_rights_in_the_admin_are_fixed_per_kind_of_user() -> None:
    staff = User(id=1, is_active=True, is_staff=True)
    root = User(id=2, is_active=True, is_staff=True, is_superuser=True)
    banned_root = User(id=3, is_active=False, is_staff=True, is_superuser=True)
    member = User(id=4, is_active=True)

    assert staff.has_perms(["polls.delete_poll", "accounts.ban_user", "polls.revoke_pollgrant"])
    assert staff.has_module_perms("polls")
    assert not staff.has_perm("accounts.change_user")  # who is staff: superusers only
    assert not staff.has_perm("polls.change_poll")
    assert not staff.has_module_perms("sessions")
    assert root.has_perm("accounts.change_user")
    assert root.has_module_perms("sessions")
    for nobody in (banned_root, member):
        assert not nobody.has_perm("polls.view_poll")
        assert not nobody.has_module_perms("polls")

    assert staff.may_ban(member)
    assert not staff.may_ban(staff)
    assert not staff.may_ban(root)
    assert root.may_ban(staff)
    assert not member.may_ban(staff)


async def test_createsuperuser_makes_an_admin_who_also_uses_the_api() -> None:
    identity = new_identity("root")
    password = {"DJANGO_SUPERUSER_PASSWORD": identity["password"]}
    account = ["--username", identity["username"], "--email", identity["email"]]

    status, output = await manage("createsuperuser", "--noinput", *account, **password)
    assert (status, output.strip().splitlines()[-1]) == (0, "Superuser created successfully.")

    api = AddressedClient()
    body = {"username": identity["username"], "password": identity["password"]}
    assert (await api.post_json("/api/user/login", body)).status_code == 204
    me = await api.get("/api/user/me")
    assert me.status_code == 200
    assert me.json()["username"] == identity["username"]
    admin = AdminClient()
    assert (await admin.sign_in(identity["username"], identity["password"])).status_code == 302
    assert b"Groups" not in (await admin.get("/admin/")).content  # no auth tables
    assert (await admin.get(USERS)).status_code == 200

    status, output = await manage("createsuperuser", "--noinput", *account, **password)
    assert status != 0
    assert "already taken" in output
    other = ["--username", f"x{identity['username']}", "--email", identity["email"]]
    status, output = await manage("createsuperuser", "--noinput", *other, **password)
    assert status != 0
    assert "Email is already registered" in output
    fresh = new_identity("root")
    short = {"DJANGO_SUPERUSER_PASSWORD": "short"}
    account = ["--username", fresh["username"], "--email", fresh["email"]]
    status, output = await manage("createsuperuser", "--noinput", *account, **short)
    assert status != 0
    assert "password" in output
    assert await api_login(fresh) == 401
