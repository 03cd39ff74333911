"""Submitting votes through the API and seeing them counted (real Kafka, consumer, stores)."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from django.test import override_settings

from stack import kafka as kafka_service
from stack.profiles import get_profile
from tests.polls import db_counts, db_version, db_votes, grant, make_poll, submit_vote
from tests.users import client_for, make_user
from tests.waiting import eventually
from votes.counts import store_counts
from votes.rows import PollCounts

pytestmark = pytest.mark.usefixtures("vote_consumer")


async def api_counts(poll_id: int) -> dict[int, int]:
    response = await client_for(None).get(f"/api/vote/{poll_id}")
    assert response.status_code == 200, response.content
    return {item["vote_option_id"]: item["vote_count"] for item in response.json()}


async def test_vote_change_and_repeat_give_exact_counts() -> None:
    creator, voter = await make_user(), await make_user()
    poll = await make_poll(creator)
    a, b, c = poll.option_ids
    client = client_for(voter)

    assert await submit_vote(client, poll.id, a) == 201
    assert await eventually(lambda: db_counts(poll.id), {a: 1, b: 0, c: 0}) == {a: 1, b: 0, c: 0}
    assert await submit_vote(client, poll.id, b) == 201
    assert await eventually(lambda: db_counts(poll.id), {a: 0, b: 1, c: 0}) == {a: 0, b: 1, c: 0}
    version = await db_version(poll.id)
    assert await submit_vote(client, poll.id, b) == 201  # the same vote again changes nothing
    assert await submit_vote(client_for(creator), poll.id, c) == 201
    expected = {a: 0, b: 1, c: 1}
    assert await eventually(lambda: db_counts(poll.id), expected) == expected
    assert await db_version(poll.id) == version + 1
    assert await eventually(lambda: api_counts(poll.id), expected) == expected
    assert await db_votes(poll.id) == {voter.id: b, creator.id: c}


async def test_counts_route_lists_options_in_order_with_zeros() -> None:
    poll = await make_poll(await make_user(), options=4)
    response = await client_for(None).get(f"/api/vote/{poll.id}")
    assert response.json() == [{"vote_option_id": o, "vote_count": 0} for o in poll.option_ids]


async def test_refusals() -> None:
    creator, stranger = await make_user(), await make_user()
    poll = await make_poll(creator)
    other = await make_poll(creator)
    private = await make_poll(creator, perms="private")
    viewable = await make_poll(creator, perms="public_view")
    expired = await make_poll(creator, expires_at=datetime.now(UTC) + timedelta(seconds=1))
    await grant(stranger, private, "viewer")
    client = client_for(stranger)

    assert await submit_vote(client_for(None), poll.id, poll.option_ids[0]) == 401
    assert await submit_vote(client, poll.id, other.option_ids[0]) == 404  # option of another poll
    assert await submit_vote(client, 2**62, 1) == 403  # no such poll
    assert await submit_vote(client, private.id, private.option_ids[0]) == 403  # viewer only
    assert await submit_vote(client, viewable.id, viewable.option_ids[0]) == 403
    await asyncio.sleep(1.1)
    assert await submit_vote(client, expired.id, expired.option_ids[0]) == 409
    assert (await client_for(stranger).get(f"/api/vote/{private.id}")).status_code == 200
    assert (await client_for(None).get(f"/api/vote/{private.id}")).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"poll_id": "x", "vote_option_id": 1},
        {"poll_id": 1},
        {"poll_id": 2**70, "vote_option_id": 1},
        {"poll_id": -1, "vote_option_id": 1},
        {"poll_id": 1, "vote_option_id": 1, "extra": True},
    ],
)
async def test_bad_bodies_are_422(body: dict) -> None:
    client = client_for(await make_user())
    response = await client.post("/api/vote/submit", body, content_type="application/json")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][0] == "body"


async def test_huge_poll_id_in_path_is_4xx() -> None:
    response = await client_for(None).get(f"/api/vote/{2**70}")
    assert 400 <= response.status_code < 500


async def test_interleaved_votes_of_many_users_are_exact(valkey_client) -> None:
    creator = await make_user()
    polls = [await make_poll(creator, options=4) for _ in range(3)]
    users = [await make_user("voter") for _ in range(50)]
    rng = random.Random(7)
    last: dict[tuple[int, int], int] = {}

    async def vote_20_times(user) -> None:
        client = client_for(user)
        for _ in range(20):
            poll = rng.choice(polls)
            option = rng.choice(poll.option_ids)
            # Each user's votes are sequential, so their order of receipt is known.
            assert await submit_vote(client, poll.id, option) == 201
            last[(poll.id, user.id)] = option

    await asyncio.gather(*(vote_20_times(user) for user in users))

    for poll in polls:
        expected_votes = {u: o for (p, u), o in last.items() if p == poll.id}
        expected_counts = {o: 0 for o in poll.option_ids}
        for option in expected_votes.values():
            expected_counts[option] += 1
        assert await eventually(partial(db_counts, poll.id), expected_counts) == expected_counts
        assert await db_votes(poll.id) == expected_votes
        version = await db_version(poll.id)

        async def cached(poll_id: int = poll.id) -> tuple[int, dict[int, int]]:
            found, data = valkey_client.hmget(f"counts:poll:{poll_id}", ["version", "counts"])
            pairs = json.loads(data or "[]")
            return int(found or 0), {c["vote_option_id"]: c["vote_count"] for c in pairs}

        # The cache is written right after the commit: it catches up with the database.
        assert await eventually(cached, (version, expected_counts)) == (version, expected_counts)


async def test_counts_are_rebuilt_after_valkey_is_flushed(valkey_client) -> None:
    poll = await make_poll(await make_user())
    voters = [await make_user() for _ in range(3)]
    for voter, option in zip(voters, [0, 0, 2], strict=True):
        assert await submit_vote(client_for(voter), poll.id, poll.option_ids[option]) == 201
    expected = {poll.option_ids[0]: 2, poll.option_ids[1]: 0, poll.option_ids[2]: 1}
    assert await eventually(lambda: api_counts(poll.id), expected) == expected
    valkey_client.flushall()
    assert await api_counts(poll.id) == expected
    assert int(valkey_client.hget(f"counts:poll:{poll.id}", "version")) == await db_version(poll.id)


@pytest.mark.stack_control
async def test_kafka_stopped_gives_503_and_nothing_counted() -> None:
    poll = await make_poll(await make_user())
    client = client_for(await make_user())
    assert await submit_vote(client, poll.id, poll.option_ids[0]) == 201  # the producer exists
    await eventually(
        lambda: db_counts(poll.id), {poll.option_ids[0]: 1, **{o: 0 for o in poll.option_ids[1:]}}
    )
    profile = get_profile("test")
    kafka_service.stop(profile)
    try:
        with override_settings(KAFKA_PRODUCE_TIMEOUT_SECONDS=3):
            assert await submit_vote(client, poll.id, poll.option_ids[1]) == 503
    finally:
        kafka_service.start(profile)
    await asyncio.sleep(3)  # give a wrongly kept record time to be delivered and applied
    expected = {poll.option_ids[0]: 1, poll.option_ids[1]: 0, poll.option_ids[2]: 0}
    assert await db_counts(poll.id) == expected
    assert await submit_vote(client, poll.id, poll.option_ids[2]) == 201  # and it recovers
    expected = {poll.option_ids[0]: 0, poll.option_ids[1]: 0, poll.option_ids[2]: 1}
    assert await eventually(lambda: db_counts(poll.id), expected, within=60) == expected


async def test_vote_rate_limit_answers_429_with_retry_after() -> None:
    poll = await make_poll(await make_user())
    client = client_for(await make_user())
    with override_settings(VOTE_RATE_PER_SECOND=1, VOTE_RATE_BURST=3):
        codes = [await submit_vote(client, poll.id, poll.option_ids[0]) for _ in range(4)]
        response = await client.post(
            "/api/vote/submit",
            {"poll_id": poll.id, "vote_option_id": poll.option_ids[0]},
            content_type="application/json",
        )
    assert codes == [201, 201, 201, 429]
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1


async def test_deleting_a_poll_drops_its_cached_counts(valkey_client) -> None:
    creator = await make_user()
    poll = await make_poll(creator)
    assert await submit_vote(client_for(creator), poll.id, poll.option_ids[1]) == 201
    expected = {poll.option_ids[0]: 0, poll.option_ids[1]: 1, poll.option_ids[2]: 0}
    assert await eventually(lambda: api_counts(poll.id), expected) == expected
    assert valkey_client.exists(f"counts:poll:{poll.id}") == 1
    version = int(valkey_client.hget(f"counts:poll:{poll.id}", "version"))
    response = await client_for(creator).delete(f"/api/poll/{poll.id}")
    assert response.status_code == 204
    assert valkey_client.hgetall(f"counts:poll:{poll.id}") == {b"deleted": b"1"}
    assert (await client_for(creator).get(f"/api/vote/{poll.id}")).status_code == 404
    assert await submit_vote(client_for(creator), poll.id, poll.option_ids[1]) == 403

    # A consumer batch that committed just before the deletion writes its counts late:
    # refused, and nothing is published after poll_deleted.
    pubsub = valkey_client.pubsub()
    pubsub.subscribe(f"vote-updates:poll:{poll.id}")
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    late = PollCounts(poll.id, version + 1, poll.option_ids, [0, 2, 0])
    store_counts(valkey_client, [late])
    assert valkey_client.hgetall(f"counts:poll:{poll.id}") == {b"deleted": b"1"}
    assert pubsub.get_message(timeout=1) is None
    pubsub.close()


async def test_openapi_says_what_a_503_to_a_vote_means(api) -> None:
    schema = (await api.get("/api/openapi.json")).json()
    answer = schema["paths"]["/api/vote/submit"]["post"]["responses"]["503"]
    assert "may still be applied" in answer["description"]
    assert "sending it again is safe" in answer["description"]
    assert answer["headers"]["Retry-After"]["schema"] == {"type": "integer"}
    assert "503" in schema["info"]["description"]
