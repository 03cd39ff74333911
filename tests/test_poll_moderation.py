"""The admin's service paths: deleting as staff, revoking grants, the moderator role."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from accounts.rows import UserRow
from accounts.services import do_create_user, do_deactivate_user, do_set_staff
from accounts.users import get_user
from db.pool import connection
from db.sql import fetch_value
from db.sync_bridge import run_sync
from feedapp.errors import Forbidden
from polls.errors import PollNotFound
from polls.services import (
    do_delete_poll_as_staff,
    do_grant_moderator,
    do_revoke_grants,
    do_revoke_moderator,
)
from tests.accounts_client import new_identity
from tests.poll_helpers import user_may
from tests.polls import grant, make_poll
from tests.users import make_user


async def make_staff() -> UserRow:
    identity = new_identity("staff")
    return await do_create_user(
        identity["username"], identity["email"], identity["password"], is_staff=True
    )


async def test_staff_delete_any_poll_and_the_signal_is_sent(deleted_polls) -> None:
    staff = await make_staff()
    poll = await make_poll(await make_user(), perms="private")
    await do_delete_poll_as_staff(poll.id, staff)
    assert deleted_polls == [poll.id]
    with pytest.raises(PollNotFound):
        await do_delete_poll_as_staff(poll.id, staff)
    assert deleted_polls == [poll.id]


async def test_only_active_staff_delete_as_staff(deleted_polls) -> None:
    member, staff = await make_user(), await make_staff()
    poll = await make_poll(await make_user())
    with pytest.raises(Forbidden):
        await do_delete_poll_as_staff(poll.id, member)
    # The flag is read from the database, not from the object passed in.
    with pytest.raises(Forbidden):
        await do_delete_poll_as_staff(poll.id, replace(member, is_staff=True))
    await do_deactivate_user(staff.id)
    with pytest.raises(Forbidden):
        await do_delete_poll_as_staff(poll.id, staff)
    with pytest.raises(Forbidden):  # refused before looking for the poll
        await do_delete_poll_as_staff(2**62, member)
    assert deleted_polls == []
    assert await user_may(None, "poll:view", poll.id)


async def test_sync_callers_run_on_the_bridge_loop(deleted_polls) -> None:
    staff = await make_staff()
    poll = await make_poll(await make_user())
    await asyncio.to_thread(lambda: run_sync(do_delete_poll_as_staff(poll.id, staff)))
    assert deleted_polls == [poll.id]


async def test_revoking_grants_ends_only_those_in_force() -> None:
    owner, viewer = await make_user(), await make_user()
    poll = await make_poll(owner, perms="private")
    await grant(viewer, poll, "viewer")
    assert await user_may(viewer.id, "poll:view", poll.id)
    grant_id = await _grant_id(viewer.id, poll.id)

    assert await do_revoke_grants([grant_id, 2**62], owner) == [grant_id]
    assert not await user_may(viewer.id, "poll:view", poll.id)
    assert await do_revoke_grants([grant_id]) == []
    assert await do_revoke_grants([]) == []
    assert await user_may(owner.id, "poll:view", poll.id)


async def test_the_moderator_role_is_granted_revoked_and_granted_again() -> None:
    moderator = await make_user()
    poll = await make_poll(await make_user())
    assert not await user_may(moderator.id, "poll:delete", poll.id)
    assert await do_grant_moderator(moderator.id)
    assert not await do_grant_moderator(moderator.id)  # already, over that period
    assert await user_may(moderator.id, "poll:delete", poll.id)

    assert await do_revoke_moderator(moderator.id) == 1
    assert not await user_may(moderator.id, "poll:delete", poll.id)
    assert await do_revoke_moderator(moderator.id) == 0
    # The ended grant is history; a new period may start after it.
    assert await do_grant_moderator(moderator.id)
    assert await user_may(moderator.id, "poll:delete", poll.id)


async def test_admin_flags_change_and_say_whether_they_did() -> None:
    user = await make_user()
    assert await do_set_staff(user.id, True, False)
    assert not await do_set_staff(user.id, True, False)
    found = await get_user(user.id)
    assert found is not None
    assert found.is_staff
    assert await do_set_staff(user.id, False, False)
    assert not await do_set_staff(2**62, True, True)


async def _grant_id(user_id: int, poll_id: int) -> int:
    async with connection() as conn:
        return await fetch_value(
            conn,
            "SELECT id FROM poll_grant WHERE user_id = %s AND poll_id = %s",
            (user_id, poll_id),
        )
