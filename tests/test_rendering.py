"""Answers written without ninja's re-validation say exactly what ninja would have said."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from ninja import Schema
from ninja.responses import NinjaJSONEncoder

from accounts.schemas import UserInfo
from feedapp.rendering import dumps
from polls.rows import PollRow
from polls.schemas import GetPollRow, GetPollsRow
from polls.services import do_create_poll, get_feed_page, get_poll
from tests.users import client_for, make_user
from votes.views import GetVoteCountsRow


def as_ninja_renders(schema: type[Schema], value: Any) -> Any:
    """`value` validated against `schema` and written as ninja's JSON renderer did."""
    dumped = schema.model_validate(value, from_attributes=True).model_dump()
    return json.loads(json.dumps(dumped, cls=NinjaJSONEncoder))


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 12, 2, 1, 2, 3, 456789, tzinfo=UTC),
        datetime(2026, 12, 2, 1, 2, 3, tzinfo=UTC),
        datetime(2026, 12, 2, 1, 2, 3, 400000, tzinfo=UTC).astimezone(
            datetime.now().astimezone().tzinfo
        ),
        uuid.UUID(int=7),
        Decimal("1.50"),
        {"nested": [1, "two", None, True, 2**62]},
    ],
)
def test_dumps_writes_what_ninja_wrote(value: Any) -> None:
    assert json.loads(dumps({"v": value})) == json.loads(
        json.dumps({"v": value}, cls=NinjaJSONEncoder)
    )


def test_a_dataclass_row_is_written_as_its_schema() -> None:
    row = PollRow(
        id=1,
        question="Q?",
        expires_at=datetime(2030, 1, 1, 12, 0, 0, 123456, tzinfo=UTC),
        creator_name="ann",
        options=["a", "b"],
        option_ids=[10, 11],
        user_vote=None,
    )
    assert json.loads(dumps(row)) == as_ninja_renders(GetPollRow, row)


async def test_hot_routes_answer_as_their_declared_schemas() -> None:
    owner = await make_user("render")
    expires = datetime.now(UTC) + timedelta(days=2, microseconds=123456)
    poll = await do_create_poll(owner, "Rendered?", ["yes", "no"], "public_vote", expires)
    client = client_for(owner)

    got = (await client.get(f"/api/poll/{poll.id}")).json()
    assert got == as_ninja_renders(GetPollRow, await get_poll(poll.id, owner))

    page = (await client.get(f"/api/poll/all?before={poll.id + 1}&limit=1")).json()
    rows = await get_feed_page(owner, 1, poll.id + 1)
    assert page == [as_ninja_renders(GetPollsRow, row) for row in rows]

    counts = (await client.get(f"/api/vote/{poll.id}")).json()
    expected = [{"vote_option_id": option, "vote_count": 0} for option in poll.option_ids]
    assert counts == [as_ninja_renders(GetVoteCountsRow, pair) for pair in expected]

    me = (await client.get("/api/user/me")).json()
    assert me == as_ninja_renders(UserInfo, owner)
