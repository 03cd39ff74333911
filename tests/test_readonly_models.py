"""The admin's models read only: no ORM write can skip the services' side effects."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from accounts.models import User
from db.readonly import ReadOnlyModel
from polls.models import Poll, PollGrant, VoteOption
from tests.poll_helpers import user_may
from tests.polls import make_poll
from tests.users import make_user


def refused(write: Callable[[], object]) -> bool:
    try:
        write()
    except ReadOnlyModel:
        return True
    return False


async def test_writes_through_the_admin_models_are_refused(deleted_polls) -> None:
    creator = await make_user()
    poll = await make_poll(creator)

    def attempts() -> dict[str, bool]:
        # asgiref's shared thread may hold a Django connection from an earlier test that a
        # PostgreSQL restart (a stack_control test) has cut since: start with a fresh one.
        connections.close_all()
        polls = Poll.objects.filter(pk=poll.id)
        return {
            "bulk delete": refused(polls.delete),
            "bulk update": refused(lambda: polls.update(question="changed")),
            "instance delete": refused(lambda: Poll.objects.get(pk=poll.id).delete()),
            "instance save": refused(lambda: Poll.objects.get(pk=poll.id).save()),
            "create": refused(lambda: Poll.objects.create(question="q", creator_id=creator.id)),
            "option delete": refused(VoteOption.objects.filter(poll_id=poll.id).delete),
            "grant update": refused(
                lambda: PollGrant.objects.filter(poll_id=poll.id).update(expires_at=None)
            ),
            "user bulk delete": refused(User.objects.filter(pk=creator.id).delete),
            "user delete": refused(lambda: User.objects.get(pk=creator.id).delete()),
        }

    outcomes = await sync_to_async(attempts)()
    assert outcomes == dict.fromkeys(outcomes, True)
    assert await user_may(None, "poll:view", poll.id)  # still there
    assert deleted_polls == []


def test_reads_still_work() -> None:
    # Querysets are lazy: building one must not trip the guard.
    assert str(Poll.objects.filter(pk=1).query).startswith("SELECT")
    with pytest.raises(ReadOnlyModel):
        Poll.objects.none().delete()
