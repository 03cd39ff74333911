"""The per-process hub: one Valkey pub/sub connection fanning poll updates out to local streams.

The consumer publishes each poll's new counts on the poll's channel (votes.pubsub holds
the channel names and the messages' format). A web process subscribes only to the polls
its own clients watch (reference counted: SUBSCRIBE for the first client of a poll,
UNSUBSCRIBE after the last), decodes each message once and puts it into every watching
client's mailbox. A mailbox holds one item, the latest, so a slow
client skips intermediate counts instead of growing a backlog.

Tasks, while at least one client is registered: the reader (owns the connection: connects
with backoff, reads, answers liveness), the writer (sends SUBSCRIBE/UNSUBSCRIBE batches
for what changed) and, after a reconnection, a short-lived resync. When the last client
leaves the tasks stop and the connection closes. Messages published while the connection
was down are lost, so after a reconnection every client gets fresh counts from
PostgreSQL once its poll's subscription is confirmed again.

The hub belongs to one event loop (`get_hub()`), like the SQL pool and the Valkey client.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import enum
import heapq
import itertools
import json
import logging
import math
from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import valkey.asyncio as avalkey
from django.conf import settings
from valkey.asyncio.connection import AbstractConnection
from valkey.exceptions import ValkeyError

from db.backoff import Backoff
from db.singletons import PerLoop
from db.valkey import get_async_valkey
from feedapp.errors import Unavailable
from realtime.metrics import HUB_SUBSCRIPTIONS
from votes import pubsub
from votes.counts import read_counts_many
from votes.rows import PollCounts

log = logging.getLogger(__name__)

BACKOFF_MIN_SECONDS = 0.1
BACKOFF_MAX_SECONDS = 5.0
# With no traffic for this long the reader sends a PING; a connection that does not
# answer within the Valkey timeout is dead even if TCP has not noticed (e.g. a lost host).
PING_IDLE_SECONDS = 10.0
# Channels per SUBSCRIBE/UNSUBSCRIBE command, and polls per resync query.
BATCH = 500
# Streams woken per turn of the event loop when an update reaches many at once.
WAKE_BATCH = 200
# How long one turn of a poll's fan-out round may offer (see Hub._fan_out), checking the
# clock after every TIME_CHECK_EVERY clients.
FAN_OUT_TURN_SECONDS = 0.01
TIME_CHECK_EVERY = 50


@dataclass(frozen=True, slots=True)
class Update:
    """A poll's counts at one version; `data` is their JSON list, in presentation order."""

    version: int
    data: str

    @classmethod
    def from_counts(cls, counts: PollCounts) -> Update:
        """The update that carries these counts."""
        return cls(counts.version, json.dumps(counts.as_list()))


class Signal(enum.Enum):
    """What a stream sees besides counts."""

    KEEPALIVE = "keepalive"  # nothing new for a while (produced by the waiting stream)
    POLL_DELETED = "poll_deleted"  # the poll is gone: say so, then end
    SHUTDOWN = "shutdown"  # the process is stopping: end
    # The viewer may no longer watch (banned, logged out, token expired, grant revoked,
    # poll no longer visible): say so, then end. Produced by the watching stream.
    ACCESS_REVOKED = "access_revoked"


_FINAL = (Signal.POLL_DELETED, Signal.SHUTDOWN)


class HubClosed(Exception):
    """The hub no longer takes clients (the process is shutting down)."""


class _Deadlines:
    """When waiting clients give up: one timer for all of a loop's clients.

    A stream waits for its next item with a deadline (its keepalive), and nearly always
    an update comes first. An `asyncio.timeout` per wait made and cancelled a timer
    handle each time: with 10,000 streams on a busy poll that was a third of the
    process's CPU. Here a client is put into a heap once (its `_armed` flag), with the
    deadline it had then; when that time comes, a client still waiting past its current
    deadline is woken (it gets None), one still waiting with a later deadline goes back
    into the heap, and one that is not waiting is dropped until it waits again. So each
    wait costs two assignments, and the heap holds each client at most once.
    """

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._heap: list[tuple[float, int, Client]] = []
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self.wakeups = _wakeups.get()  # the same loop's

    def arm(self, client: Client) -> None:
        """Make sure `client` is woken by its deadline if it is still waiting then."""
        if client._armed:
            return
        client._armed = True
        heapq.heappush(self._heap, (client._deadline, next(self._order), client))
        self._schedule()

    def _schedule(self) -> None:
        when = self._heap[0][0] if self._heap else math.inf
        if when >= self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = self._loop.call_at(when, self._expire), when

    def _expire(self) -> None:
        self._timer, self._timer_at = None, math.inf
        now = self._loop.time()
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, client = heapq.heappop(heap)
            client._armed = False
            waiter = client._waiter
            if waiter is None or waiter.done():
                continue
            if client._deadline <= now:
                waiter.set_result(None)
            else:
                self.arm(client)
        self._schedule()


_deadlines: PerLoop[_Deadlines] = PerLoop(_Deadlines)


class _Wakeups:
    """Waiting clients to wake, WAKE_BATCH per turn of the event loop.

    An update of a poll with 10,000 local streams would otherwise make 10,000 tasks
    ready at once, and every other task of the process (a vote being submitted, a query
    whose answer came in) would wait behind all of their writes: requests then held
    their database connections for seconds, and others timed out waiting for one. Woken
    in batches, the streams' writes take turns with the rest of the process. A client
    queued twice is woken once, with the newest item (its mailbox keeps only that).
    """

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: collections.deque[Client] = collections.deque()
        self._scheduled = False

    def add(self, client: Client) -> None:
        self._queue.append(client)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._run)

    def _run(self) -> None:
        queue = self._queue
        for _ in range(min(len(queue), WAKE_BATCH)):
            client = queue.popleft()
            client._queued = False
            waiter = client._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        if queue:
            self._loop.call_soon(self._run)
        else:
            self._scheduled = False


_wakeups: PerLoop[_Wakeups] = PerLoop(_Wakeups)


# Writes an update to its stream at once, if it can (True), without waking the stream's
# task; see Client.
Express = Callable[[Update], bool]


class Client:
    """One local stream's mailbox: at most one pending item, the latest; an end is final.

    A stream whose transport can write an update synchronously (SSE on production's
    server) gives the client an `express` function. While the stream's task waits in
    `next` with nothing pending, until the time it names (when the viewer's right must
    be asked again), an offered update is written by `express` in place: no future, no
    task wake-up, no trip through the stream's generators. That was about half of a
    stream event's cost (bench.sse_fanout --updates). Anything else, or an update
    `express` refuses (the client is not reading, the response is not under way), goes
    into the mailbox and wakes the task as before. `written` is the newest version
    written in place, and `written_at` when, so the stream knows what was sent meanwhile.
    """

    __slots__ = (
        "_armed",
        "_deadline",
        "_deadlines",
        "_express",
        "_express_until",
        "_item",
        "_offered",
        "_queued",
        "_waiter",
        "poll_id",
        "written",
        "written_at",
    )

    def __init__(self, poll_id: int, express: Express | None = None) -> None:
        self.poll_id = poll_id
        self._item: Update | Signal | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._deadline = 0.0
        self._armed = False
        self._deadlines: _Deadlines | None = None  # its loop's, from its first wait on
        self._queued = False  # waiting to be woken (_Wakeups)
        self._offered = -1  # the newest counts version offered so far
        self._express = express
        self._express_until = 0.0  # express writes allowed before this time (loop clock)
        self.written = -1
        self.written_at = 0.0

    @property
    def pending(self) -> Update | Signal | None:
        """The item not read yet, if any."""
        return self._item

    def offer(self, item: Update | Signal) -> None:
        """Replace the pending item, unless it is an end or newer counts."""
        current = self._item
        if current in _FINAL:
            return
        if isinstance(item, Update):
            if item.version <= self._offered:
                return  # pending, or already read: the stream has it or newer
            self._offered = item.version
            if self._express is not None and self._written_in_place(item):
                return
        self._item = item
        waiter = self._waiter
        if waiter is not None and not waiter.done() and not self._queued:
            self._queued = True
            assert self._deadlines is not None  # set by the wait that made the waiter
            self._deadlines.wakeups.add(self)

    def _written_in_place(self, update: Update) -> bool:
        waiter = self._waiter
        if waiter is None or waiter.done() or self._item is not None:
            return False  # the task is busy, or will read the mailbox anyway
        assert self._deadlines is not None and self._express is not None
        now = self._deadlines._loop.time()
        if now >= self._express_until or not self._express(update):
            return False
        self.written, self.written_at = update.version, now
        return True

    async def next(self, within: float, express_until: float = 0.0) -> Update | Signal | None:
        """The pending item, waiting up to `within` seconds for one; None if none came.

        While it waits, updates may be written in place until `express_until` (loop
        clock), if the client has an `express` function.
        """
        if self._item is None:
            deadlines = self._deadlines
            if deadlines is None:
                deadlines = self._deadlines = _deadlines.get()
            waiter = deadlines._loop.create_future()
            self._waiter = waiter
            self._deadline = deadlines._loop.time() + within
            self._express_until = express_until
            deadlines.arm(self)
            try:
                await waiter
            finally:
                self._waiter = None
                self._express_until = 0.0
        item = self._item
        if item not in _FINAL:
            self._item = None
        return item


@dataclass(eq=False)
class _Poll:
    clients: set[Client] = field(default_factory=set)
    # Set while the poll's subscription is confirmed on the current connection.
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    # Its clients may hold counts older than what was published: resync once subscribed.
    stale: bool = False
    deleted: bool = False
    # The newest counts delivered, and whether a round of offering them is under way.
    latest: Update | None = None
    fanning: bool = False


@dataclass(eq=False)
class _Link:
    """One pub/sub connection and what was sent on it."""

    conn: AbstractConnection
    sent: set[int] = field(default_factory=set)
    awaiting: dict[int, int] = field(default_factory=dict)  # unconfirmed SUBSCRIBEs per poll


@dataclass(frozen=True)
class HubStats:
    clients: int
    polls: int  # polls with local clients
    subscriptions: int  # polls subscribed on the current connection
    tasks: int  # the hub's running tasks
    connected: bool


class Hub:
    """Local clients per poll, fed from one Valkey pub/sub connection."""

    def __init__(self, url: str, timeout: float) -> None:
        self._timeout = timeout
        # Used only to make connections: every connection's lifetime is the reader's.
        self._pool = avalkey.ConnectionPool.from_url(
            url,
            socket_connect_timeout=timeout,
            socket_timeout=None,  # a subscriber waits for messages indefinitely
            socket_keepalive=True,
            health_check_interval=0,  # liveness is the reader's own PING
            client_name="feedapp-live-updates",
        )
        self._polls: dict[int, _Poll] = {}
        self._clients = 0
        self._link: _Link | None = None
        self._dirty = asyncio.Event()
        self._resync: set[int] = set()
        self._resync_task: asyncio.Task[None] | None = None
        self._run: tuple[asyncio.Task[None], asyncio.Task[None]] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    # --- clients --------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether the hub was closed (the process is shutting down)."""
        return self._closed

    def join(self, poll_id: int, express: Express | None = None) -> Client:
        """Register a client of `poll_id`; subscribes the poll for its first client.

        `express`: how the client's stream writes an update in place (see Client)."""
        if self._closed:
            raise HubClosed()
        poll = self._polls.get(poll_id)
        if poll is None:
            poll = self._polls[poll_id] = _Poll()
            HUB_SUBSCRIPTIONS.inc()
            self._dirty.set()
        client = Client(poll_id, express)
        poll.clients.add(client)
        self._clients += 1
        if poll.deleted:
            client.offer(Signal.POLL_DELETED)
        self._start()
        return client

    def leave(self, client: Client) -> None:
        """Unregister a client (idempotent); unsubscribes after a poll's last client."""
        poll = self._polls.get(client.poll_id)
        if poll is None or client not in poll.clients:
            return
        poll.clients.discard(client)
        self._clients -= 1
        if not poll.clients:
            del self._polls[client.poll_id]
            HUB_SUBSCRIPTIONS.dec()
            self._resync.discard(client.poll_id)
            self._dirty.set()
            if not self._polls:
                self._stop()

    async def subscribed(self, client: Client) -> bool:
        """Wait until the client's poll is subscribed (at most the Valkey timeout)."""
        poll = self._polls.get(client.poll_id)
        if poll is None:
            return False
        try:
            async with asyncio.timeout(self._timeout):
                await poll.subscribed.wait()
            return True
        except TimeoutError:
            # Counts published before the subscription takes effect would be missed.
            poll.stale = True
            return False

    def end_poll(self, poll_id: int) -> None:
        """Tell the poll's local clients it was deleted."""
        poll = self._polls.get(poll_id)
        if poll is None:
            return
        poll.deleted = True
        for client in poll.clients:
            client.offer(Signal.POLL_DELETED)

    def close(self) -> None:
        """End every stream (they see SHUTDOWN) and refuse new clients; stops the tasks."""
        self._closed = True
        for poll in self._polls.values():
            for client in poll.clients:
                client.offer(Signal.SHUTDOWN)
        self._stop()

    async def aclose(self) -> None:
        """`close`, then wait for the tasks to finish."""
        self.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._pool.disconnect()

    def pending(self, poll_id: int) -> list[Update | Signal | None]:
        """What each local client of the poll has not read yet (tests, debugging)."""
        poll = self._polls.get(poll_id)
        return [client.pending for client in poll.clients] if poll else []

    def written(self, poll_id: int) -> list[int]:
        """The newest version each local client of the poll wrote in place (-1: none)."""
        poll = self._polls.get(poll_id)
        return [client.written for client in poll.clients] if poll else []

    def stats(self) -> HubStats:
        """Counts of clients, polls, subscriptions and running tasks (tests, monitoring)."""
        link = self._link
        return HubStats(
            clients=self._clients,
            polls=len(self._polls),
            subscriptions=len(link.sent) if link else 0,
            tasks=sum(1 for task in self._tasks if not task.done()),
            connected=link is not None,
        )

    # --- delivery -------------------------------------------------------------------------

    def deliver(self, poll_id: int, item: Update | Signal) -> None:
        """Offer an update (or an end) to every local client of the poll."""
        if item is Signal.POLL_DELETED:
            self.end_poll(poll_id)
            return
        poll = self._polls.get(poll_id)
        if poll is None or poll.deleted:
            return
        if not isinstance(item, Update) or len(poll.clients) <= WAKE_BATCH:
            for client in poll.clients:
                client.offer(item)
            return
        if poll.latest is None or item.version > poll.latest.version:
            poll.latest = item
        if not poll.fanning:
            poll.fanning = True
            self._round(poll)

    def _round(self, poll: _Poll) -> None:
        """Start a round of offering the poll's newest counts to all its clients."""
        if poll.deleted or not poll.clients:
            poll.fanning = False
            return
        assert poll.latest is not None
        self._fan_out(poll, list(poll.clients), 0, poll.latest.version, 0.0)

    def _fan_out(
        self, poll: _Poll, clients: list[Client], start: int, since: int, spent: float
    ) -> None:
        """Offer a poll's newest counts to its clients, a turn of the loop at a time.

        A busy poll publishes versions faster than thousands of streams can be written
        (bench.hot_poll: 20 a second for 10,000 streams). Offering each version to every
        client cost as much as the writes; instead, rounds go over the clients offering
        whatever is newest when each client's turn comes, and a round that saw a newer
        version arrive is followed by another. So the work per version is constant and
        each stream gets the newest counts once per round.

        A turn takes up to FAN_OUT_TURN_SECONDS (offers written in place are done then;
        streams to wake are woken WAKE_BATCH a turn by _Wakeups), then the loop's other
        work runs. The next round starts after a pause as long as this one's turns took
        (`spent`): back to back, rounds took all the time the process had, and the votes
        that make the versions waited (bench.hot_poll got half its 300 votes a second
        through). So one poll's fan-out takes at most about half the process, however
        busy the poll, and a stream gets the newest counts at least once per two rounds.
        """
        assert poll.latest is not None
        latest = poll.latest
        loop = asyncio.get_running_loop()
        began = loop.time()
        end, count = start, len(clients)
        while end < count:
            for client in clients[end : end + TIME_CHECK_EVERY]:
                client.offer(latest)
            end += TIME_CHECK_EVERY
            if loop.time() - began >= FAN_OUT_TURN_SECONDS:
                break
        spent += loop.time() - began
        if end < count:
            loop.call_soon(self._fan_out, poll, clients, end, since, spent)
        elif latest.version > since and not poll.deleted and poll.clients:
            # Clients offered early in this round got an older version: another round.
            loop.call_later(spent, self._round, poll)
        else:
            poll.fanning = False

    def _on_message(self, channel: bytes, data: bytes) -> None:
        poll_id = pubsub.channel_poll_id(channel)
        if poll_id is None or poll_id not in self._polls:
            return  # unsubscribed meanwhile
        try:
            item = decode_message(channel, data)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring a malformed message on %r: %r", channel[:100], exc)
            return
        self.deliver(poll_id, item)

    # --- tasks ----------------------------------------------------------------------------

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        # A context of its own: the hub outlives the request that started it, and must not
        # carry that request's context variables (asgiref refuses those once it ended).
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(
            coroutine, name=name, context=contextvars.Context()
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _start(self) -> None:
        if self._run is None:
            self._run = (
                self._spawn(self._read_forever(), "live-updates-reader"),
                self._spawn(self._write_forever(), "live-updates-writer"),
            )

    def _stop(self) -> None:
        run, self._run = self._run, None
        for task in (*(run or ()), self._resync_task):
            if task is not None:
                task.cancel()
        self._resync_task = None

    async def _read_forever(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = Backoff(BACKOFF_MIN_SECONDS, BACKOFF_MAX_SECONDS)
        lost = False  # whether messages may have been missed since the last connection
        while True:
            conn = self._pool.make_connection()
            try:
                # The connection's own handshake (HELLO, CLIENT SETNAME) has no read timeout.
                async with asyncio.timeout(self._timeout * 2):
                    await conn.connect()
            except BaseException as exc:
                await conn.disconnect(nowait=True)
                if not isinstance(exc, ValkeyError | OSError):  # TimeoutError is an OSError
                    raise
                wait = backoff.next()
                log.warning("live updates: Valkey unreachable, retry in %.1f s: %r", wait, exc)
                lost = True
                await asyncio.sleep(wait)
                continue
            link = _Link(conn)
            self._link = link
            if lost:
                log.info("live updates: reconnected to Valkey, resubscribing")
                for poll in self._polls.values():
                    poll.stale = True
            self._dirty.set()
            connected_at = loop.time()
            try:
                await self._read(link)
            except (ValkeyError, OSError) as exc:
                log.warning("live updates: Valkey connection lost: %r", exc)
                lost = True
            finally:
                if self._link is link:
                    self._link = None
                    for poll in self._polls.values():
                        poll.subscribed.clear()
                await conn.disconnect(nowait=True)
            # A connection that keeps failing right after it was made must not spin.
            if loop.time() - connected_at > BACKOFF_MAX_SECONDS:
                backoff.reset()
            await asyncio.sleep(backoff.next())

    async def _read(self, link: _Link) -> None:
        pinged = False
        while True:
            timeout = self._timeout if pinged else PING_IDLE_SECONDS
            response = await link.conn.read_response(timeout=timeout, push_request=True)
            if response is None:
                if pinged:
                    raise ConnectionError("Valkey did not answer PING")
                await link.conn.send_command("PING", check_health=False)
                pinged = True
                continue
            pinged = False
            if isinstance(response, list) and len(response) == 3:
                kind, channel, data = response
                if kind == b"message":
                    self._on_message(channel, data)
                elif kind == b"subscribe":
                    self._on_subscribed(link, channel)

    def _on_subscribed(self, link: _Link, channel: bytes) -> None:
        poll_id = pubsub.channel_poll_id(channel)
        if poll_id is None:
            return
        left = link.awaiting.get(poll_id, 0) - 1
        if left > 0:
            link.awaiting[poll_id] = left  # a later SUBSCRIBE of the same poll is on its way
            return
        link.awaiting.pop(poll_id, None)
        poll = self._polls.get(poll_id)
        if poll is None or poll_id not in link.sent:
            return
        poll.subscribed.set()
        if poll.stale:
            poll.stale = False
            self._resync.add(poll_id)
            if self._resync_task is None or self._resync_task.done():
                self._resync_task = self._spawn(self._resync_all(), "live-updates-resync")

    async def _write_forever(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            link = self._link
            if link is None:
                continue  # the reader marks everything dirty once it has a connection
            try:
                await self._sync_subscriptions(link)
            except (ValkeyError, OSError) as exc:
                # The reader notices the broken connection and reconnects.
                log.info("live updates: subscription change not sent: %r", exc)

    async def _sync_subscriptions(self, link: _Link) -> None:
        add = [poll_id for poll_id in self._polls if poll_id not in link.sent]
        drop = [poll_id for poll_id in link.sent if poll_id not in self._polls]
        for command, polls in (("SUBSCRIBE", add), ("UNSUBSCRIBE", drop)):
            for batch in _batches(polls):
                # Never let the library reconnect on its own: only the reader connects,
                # so that it knows when messages may have been lost.
                if self._link is not link or not link.conn.is_connected:
                    return
                for poll_id in batch:
                    if command == "SUBSCRIBE":
                        link.sent.add(poll_id)
                        link.awaiting[poll_id] = link.awaiting.get(poll_id, 0) + 1
                    else:
                        link.sent.discard(poll_id)
                channels = [pubsub.updates_channel(poll_id) for poll_id in batch]
                await link.conn.send_command(command, *channels, check_health=False)

    async def _resync_all(self) -> None:
        backoff = Backoff(BACKOFF_MIN_SECONDS, BACKOFF_MAX_SECONDS)
        while self._resync:
            batch = sorted(self._resync)[:BATCH]
            try:
                found = {counts.poll_id: counts for counts in await read_counts_many(batch)}
            except (psycopg.Error, OSError, Unavailable) as exc:
                wait = backoff.next()
                log.warning("live updates: resync failed, retry in %.1f s: %r", wait, exc)
                await asyncio.sleep(wait)
                continue
            for poll_id in batch:
                if poll_id not in self._resync:
                    continue  # its last client left meanwhile
                self._resync.discard(poll_id)
                counts = found.get(poll_id)
                self.deliver(poll_id, Update.from_counts(counts) if counts else Signal.POLL_DELETED)


def decode_message(channel: bytes | str, data: bytes | str) -> Update | Signal:
    """A poll channel's message as the item its streams get, decoded once for all clients."""
    message = pubsub.decode(channel, data)
    if isinstance(message, pubsub.PollDeleted):
        return Signal.POLL_DELETED
    return Update.from_counts(message)


def _batches(items: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(items), BATCH):
        yield items[start : start + BATCH]


# --- one hub per event loop ---------------------------------------------------------------


def _make_hub() -> Hub:
    from realtime.shutdown import install_signal_handlers

    # Servers without a lifespan protocol (daphne) get their streams ended on SIGTERM too.
    install_signal_handlers()
    return Hub(settings.VALKEY_URL, settings.VALKEY_TIMEOUT_SECONDS)


_hubs: PerLoop[Hub] = PerLoop(_make_hub)


def get_hub() -> Hub:
    """The running loop's hub (made on first use; its tasks run only while it has clients)."""
    return _hubs.get()


def all_hubs() -> Iterable[tuple[asyncio.AbstractEventLoop, Hub]]:
    """Every loop's hub (for shutdown and for deletions made on another loop)."""
    return _hubs.items()


async def announce_poll_deleted(poll_id: int) -> None:
    """End the poll's streams: this process's at once, every process's through Valkey."""
    for loop, hub in all_hubs():
        # A deletion made by synchronous code runs on another loop than the streams.
        with contextlib.suppress(RuntimeError):  # that loop is closed
            loop.call_soon_threadsafe(hub.end_poll, poll_id)
    await get_async_valkey().publish(*pubsub.encode(pubsub.PollDeleted(poll_id)))


async def end_deleted_poll_streams(sender: object, poll_id: int, **kwargs: Any) -> None:
    """polls.signals.poll_deleted receiver: the poll's streams say so and end, everywhere."""
    await announce_poll_deleted(poll_id)


async def close_hub() -> None:
    """Close the running loop's hub and forget it (tests; servers use realtime.shutdown)."""
    hub = _hubs.pop()
    if hub is not None:
        await hub.aclose()
