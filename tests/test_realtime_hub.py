"""The per-process hub and the stream generator, in this process, on the real Valkey and
PostgreSQL: size-one mailboxes, reference-counted subscriptions, resync after an outage."""

from __future__ import annotations

import asyncio
import json

import pytest
from django.conf import settings

from db.pool import connection
from realtime.access import Viewer
from realtime.hub import Client, Hub, Signal, Update, decode_message
from realtime.sse import KEEPALIVE, POLL_DELETED, event_stream
from realtime.watch import watch
from stack import valkey as valkey_service
from stack.profiles import get_profile
from tests.polls import make_poll
from tests.sse_client import parse_event
from tests.users import make_user
from tests.waiting import eventually
from votes.counts import read_counts
from votes.pubsub import updates_channel
from votes.rows import PollCounts

PROFILE = get_profile("test")


def update(version: int) -> Update:
    return Update(version, json.dumps([{"vote_option_id": 1, "vote_count": version}]))


def message(poll_id: int, version: int, counts: list[tuple[int, int]]) -> str:
    return json.dumps(
        {
            "type": "vote_update",
            "poll_id": poll_id,
            "version": version,
            "counts": [{"vote_option_id": o, "vote_count": c} for o, c in counts],
        }
    )


async def counts_now(poll_id: int) -> PollCounts:
    counts = await read_counts(poll_id)
    assert counts is not None
    return counts


def decode(chunk: bytes):
    return parse_event(chunk.decode().removesuffix("\n\n"))


async def as_result(value):
    return value


async def wait_stat(hub: Hub, name: str, expected: object) -> object:
    return await eventually(lambda: as_result(getattr(hub.stats(), name)), expected)


async def next_update(items, within: float = 30.0):
    """The next item that is not a keepalive, within a bound."""
    async with asyncio.timeout(within):
        item = await anext(items)
        while item is Signal.KEEPALIVE:
            item = await anext(items)
        return item


@pytest.fixture
async def hub():
    """A hub of this test's own (the process's hub is left to the HTTP tests)."""
    own = Hub(settings.VALKEY_URL, settings.VALKEY_TIMEOUT_SECONDS)
    yield own
    await own.aclose()


async def numsub(valkey_client, poll_ids: list[int]) -> list[int]:
    """Subscribers per poll channel, as Valkey counts them."""
    channels = [updates_channel(poll_id) for poll_id in poll_ids]
    return [count for _, count in valkey_client.pubsub_numsub(*channels)]


# --- the mailbox ----------------------------------------------------------------------------


async def test_a_mailbox_keeps_only_the_latest_counts() -> None:
    client = Client(poll_id=1)
    for version in range(1, 101):
        client.offer(update(version))
    client.offer(update(50))  # an older version arriving late never replaces a newer one
    assert await client.next(within=1) == update(100)
    assert await client.next(within=0.05) is None  # nothing queued behind it


async def test_an_end_is_final_and_not_replaced_by_counts() -> None:
    client = Client(poll_id=1)
    client.offer(update(1))
    client.offer(Signal.POLL_DELETED)
    client.offer(update(2))
    assert await client.next(within=1) is Signal.POLL_DELETED
    assert await client.next(within=1) is Signal.POLL_DELETED


async def test_a_waiting_reader_is_woken_by_an_offer() -> None:
    client = Client(poll_id=1)
    waiting = asyncio.create_task(client.next(within=30))
    await asyncio.sleep(0)
    client.offer(update(3))
    assert await waiting == update(3)


async def test_waits_end_at_their_own_deadlines() -> None:
    loop = asyncio.get_running_loop()
    slow, quick = Client(poll_id=1), Client(poll_id=1)
    began = loop.time()
    # The later deadline is armed first: the earlier one must still fire on time.
    waits = [
        asyncio.create_task(client.next(within=w)) for client, w in ((slow, 0.6), (quick, 0.1))
    ]
    done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    assert done == {waits[1]} and waits[1].result() is None
    assert 0.1 <= loop.time() - began < 0.5
    assert await waits[0] is None
    assert loop.time() - began >= 0.6


async def test_a_new_wait_is_not_ended_by_an_earlier_deadline() -> None:
    loop = asyncio.get_running_loop()
    client = Client(poll_id=1)
    first = asyncio.create_task(client.next(within=0.1))
    await asyncio.sleep(0)
    client.offer(update(1))
    assert await first == update(1)
    began = loop.time()
    assert await client.next(within=0.4) is None  # the 0.1 s deadline passes meanwhile
    assert loop.time() - began >= 0.4


async def test_many_waits_end_by_their_deadline() -> None:
    clients = [Client(poll_id=1) for _ in range(2000)]
    results = await asyncio.wait_for(
        asyncio.gather(
            *(client.next(within=0.05 + i / 20_000) for i, client in enumerate(clients))
        ),
        timeout=5,
    )
    assert results == [None] * len(clients)


async def test_an_update_wakes_many_streams_in_turns_with_other_work() -> None:
    clients = [Client(poll_id=1) for _ in range(1000)]
    waits = [asyncio.create_task(client.next(within=30)) for client in clients]
    await asyncio.sleep(0)
    other_ran_at: list[int] = []

    async def other_work() -> None:
        await asyncio.sleep(0)
        other_ran_at.append(sum(wait.done() for wait in waits))

    for client in clients:
        client.offer(update(5))
    other = asyncio.create_task(other_work())
    assert await asyncio.gather(*waits) == [update(5)] * len(clients)
    await other
    # The other task ran before the last streams were woken, not after all of them.
    assert other_ran_at[0] < len(clients)


async def test_a_busy_poll_fans_out_the_newest_counts_in_rounds(hub) -> None:
    clients = [hub.join(1) for _ in range(1000)]
    try:
        for version in range(1, 51):  # faster than any round over 1,000 clients
            hub.deliver(1, update(version))

        async def newest(client: Client) -> list[int]:
            seen = [(await client.next(within=5)).version]  # type: ignore[union-attr]
            while seen[-1] != 50:
                seen.append((await client.next(within=5)).version)  # type: ignore[union-attr]
            return seen

        received = await asyncio.gather(*(newest(client) for client in clients))
        # Each got the newest; the first turn's few may have had the first version before.
        assert all(seen in ([50], [1, 50]) for seen in received)
        assert sum(seen == [50] for seen in received) >= len(clients) - 200
        # Nothing older is left behind for anyone.
        assert all(client.pending is None for client in clients)
        hub.deliver(1, update(49))
        await asyncio.sleep(0.05)
        assert all(client.pending is None for client in clients)
    finally:
        for client in clients:
            hub.leave(client)


def test_messages_are_checked_when_decoded() -> None:
    decoded = decode_message(updates_channel(7), message(7, 4, [(11, 3), (12, 0)]))
    assert decoded == Update(
        4, '[{"vote_option_id": 11, "vote_count": 3}, {"vote_option_id": 12, "vote_count": 0}]'
    )
    deleted = '{"type": "poll_deleted", "poll_id": 7}'
    assert decode_message(updates_channel(7), deleted) is Signal.POLL_DELETED
    for bad in [
        "not json",
        '{"type": "other"}',
        '{"type": "vote_update", "version": "4", "counts": []}',
        '{"type": "vote_update", "version": 4, "counts": [{"vote_option_id": "x\\n"}]}',
    ]:
        with pytest.raises((ValueError, KeyError, TypeError)):
            decode_message(updates_channel(7), bad)


# --- streams through the hub ----------------------------------------------------------------


async def test_a_slow_reader_gets_the_latest_counts_not_a_backlog(hub, valkey_client) -> None:
    poll = await make_poll(await make_user(), options=2)
    a, b = poll.option_ids
    initial = await counts_now(poll.id)
    assert initial is not None
    stream = event_stream(hub, Viewer(poll.id, None), initial, keepalive=0.5)
    try:
        first = decode(await anext(stream))
        assert (first.name, first.id) == ("vote_update", initial.version)
        await wait_stat(hub, "subscriptions", 1)

        # Fifty versions are published while the reader does not read.
        last = initial.version + 50
        for version in range(initial.version + 1, last + 1):
            valkey_client.publish(
                updates_channel(poll.id), message(poll.id, version, [(a, version), (b, 0)])
            )
        latest = Update(
            last,
            json.dumps(
                [{"vote_option_id": a, "vote_count": last}, {"vote_option_id": b, "vote_count": 0}]
            ),
        )
        assert await eventually(lambda: as_result(hub.pending(poll.id)), [latest]) == [latest]

        # It then gets the latest counts once, and nothing is queued behind them.
        got = decode(await anext(stream))
        assert (got.name, got.id, got.counts()) == ("vote_update", last, {a: last, b: 0})
        assert decode(await anext(stream)).name == "comment"
    finally:
        await stream.aclose()


async def test_versions_never_go_back(hub) -> None:
    poll = await make_poll(await make_user(), options=1)
    initial = await counts_now(poll.id)
    assert initial is not None
    items = watch(hub, Viewer(poll.id, None), initial, keepalive=0.5)
    try:
        assert await anext(items) == Update.from_counts(initial)
        hub.deliver(poll.id, update(initial.version + 5))
        assert await anext(items) == update(initial.version + 5)
        for stale in (initial.version + 3, initial.version + 5):
            hub.deliver(poll.id, update(stale))
            # Dropped: the stream has nothing newer to say.
            assert await anext(items) is Signal.KEEPALIVE
        hub.deliver(poll.id, update(initial.version + 6))
        assert await anext(items) == update(initial.version + 6)
    finally:
        await items.aclose()


async def test_subscriptions_are_counted_by_local_clients(hub, valkey_client) -> None:
    first_poll = await make_poll(await make_user())
    second_poll = await make_poll(await make_user())
    polls = [first_poll.id, second_poll.id]
    counts = {poll_id: await counts_now(poll_id) for poll_id in polls}
    watches = [watch(hub, Viewer(poll_id, None), counts[poll_id], 30) for poll_id in polls + polls]
    for items in watches:
        await anext(items)
    assert hub.stats().clients == 4
    assert await eventually(lambda: numsub(valkey_client, polls), [1, 1]) == [1, 1]

    await watches[0].aclose()  # one of the first poll's two clients leaves: still subscribed
    assert hub.stats().clients == 3
    assert hub.stats().polls == 2
    assert await numsub(valkey_client, polls) == [1, 1]
    await watches[2].aclose()  # its last client: unsubscribed
    assert await eventually(lambda: numsub(valkey_client, polls), [0, 1]) == [0, 1]
    assert hub.stats().polls == 1
    for items in watches:
        await items.aclose()
    assert hub.stats().clients == 0
    assert await eventually(lambda: numsub(valkey_client, polls), [0, 0]) == [0, 0]


async def test_a_thousand_streams_opened_and_dropped_leave_nothing_behind(
    hub, valkey_client
) -> None:
    creator = await make_user()
    polls = [await make_poll(creator, options=2) for _ in range(10)]
    initial = {poll.id: await counts_now(poll.id) for poll in polls}
    before = {task for task in asyncio.all_tasks() if not task.done()}

    streams = [
        event_stream(hub, Viewer(poll.id, None), initial[poll.id], keepalive=60)
        for poll in polls
        for _ in range(100)
    ]
    for stream in streams:
        assert (await anext(stream)).startswith(b"event: vote_update\n")
    assert hub.stats().clients == 1000
    assert hub.stats().polls == 10
    poll_ids = [poll.id for poll in polls]
    assert await eventually(lambda: numsub(valkey_client, poll_ids), [1] * 10) == [1] * 10

    # One update per poll reaches its hundred streams.
    for poll in polls:
        version = initial[poll.id].version + 1
        valkey_client.publish(
            updates_channel(poll.id),
            message(poll.id, version, [(poll.option_ids[0], 1), (poll.option_ids[1], 0)]),
        )
    pulls = [asyncio.create_task(_next(stream)) for stream in streams]
    got = await asyncio.gather(*pulls)
    assert all(chunk.startswith(b"event: vote_update\nid: ") for chunk in got)
    assert {decode(chunk).id for chunk in got} == {initial[poll.id].version + 1 for poll in polls}

    # Half are closed like a finished response, half cancelled like a client that left.
    waiting = [asyncio.create_task(_next(stream)) for stream in streams[500:]]
    await asyncio.sleep(0)
    for stream in streams[:500]:
        await stream.aclose()
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)

    assert (hub.stats().clients, hub.stats().polls) == (0, 0)
    assert await wait_stat(hub, "tasks", 0) == 0
    assert hub.stats().subscriptions == 0
    assert hub.stats().connected is False
    assert await eventually(lambda: numsub(valkey_client, poll_ids), [0] * 10) == [0] * 10
    left = {task for task in asyncio.all_tasks() if not task.done()} - before
    assert not [task for task in left if task.get_name().startswith("live-updates")]


async def _next(stream):
    return await anext(stream)


async def test_poll_deleted_ends_the_polls_streams_only(hub, valkey_client) -> None:
    creator = await make_user()
    doomed, other = await make_poll(creator), await make_poll(creator)
    doomed_stream = event_stream(
        hub, Viewer(doomed.id, None), await counts_now(doomed.id), keepalive=30
    )
    other_stream = event_stream(
        hub, Viewer(other.id, None), await counts_now(other.id), keepalive=0.2
    )
    await anext(doomed_stream)
    await anext(other_stream)
    await wait_stat(hub, "subscriptions", 2)
    valkey_client.publish(
        updates_channel(doomed.id), json.dumps({"type": "poll_deleted", "poll_id": doomed.id})
    )
    assert await anext(doomed_stream) == POLL_DELETED
    with pytest.raises(StopAsyncIteration):
        await anext(doomed_stream)
    assert await anext(other_stream) == KEEPALIVE
    await other_stream.aclose()
    assert hub.stats().clients == 0


async def test_closing_the_hub_ends_every_stream_and_refuses_new_ones(hub) -> None:
    poll = await make_poll(await make_user())
    initial = await counts_now(poll.id)
    streams = [event_stream(hub, Viewer(poll.id, None), initial, keepalive=30) for _ in range(3)]
    for stream in streams:
        await anext(stream)
    pulls = [asyncio.create_task(_next(stream)) for stream in streams]
    await asyncio.sleep(0)
    hub.close()
    results = await asyncio.gather(*pulls, return_exceptions=True)
    assert all(isinstance(result, StopAsyncIteration) for result in results)
    assert hub.stats().clients == 0
    late = event_stream(hub, Viewer(poll.id, None), initial, keepalive=30)
    with pytest.raises(StopAsyncIteration):
        await anext(late)


@pytest.mark.stack_control
async def test_after_a_valkey_restart_streams_get_fresh_counts_from_postgresql(
    hub, valkey_client
) -> None:
    poll = await make_poll(await make_user(), options=2)
    a, b = poll.option_ids
    initial = await counts_now(poll.id)
    items = watch(hub, Viewer(poll.id, None), initial, keepalive=0.5)
    try:
        assert await anext(items) == Update.from_counts(initial)
        assert await anext(items) is Signal.KEEPALIVE  # subscribed, counts checked again
        assert hub.stats().subscriptions == 1

        valkey_service.stop(PROFILE)
        try:
            # Counts change while Valkey is down, and nobody publishes them: only the
            # hub's resync after reconnecting can tell the stream.
            async with connection() as conn:
                await conn.execute(
                    "UPDATE vote_count SET vote_count = 7 WHERE vote_option_id = %s", (b,)
                )
                await conn.execute(
                    "INSERT INTO poll_counts_version (poll_id, version) VALUES (%s, %s) "
                    "ON CONFLICT (poll_id) DO UPDATE SET version = excluded.version",
                    (poll.id, initial.version + 10),
                )
            # The stream stays open meanwhile (keepalives).
            assert await anext(items) is Signal.KEEPALIVE
        finally:
            valkey_service.start(PROFILE)

        got = await next_update(items)
        expected = PollCounts(poll.id, initial.version + 10, [a, b], [0, 7])
        assert got == Update.from_counts(expected)
        assert await wait_stat(hub, "connected", True) is True
    finally:
        await items.aclose()
