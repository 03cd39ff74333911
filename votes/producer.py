"""The web process's vote producer: one per process, supervised, behind a circuit breaker.

A vote is answered 201 only once all in-sync replicas have it. While that cannot happen
the process says so quickly and recovers by itself:

- **Circuit breaker.** When a send fails or is overdue, the supervisor thread asks the
  cluster for metadata. If the broker refuses connections, or does not answer while a
  send has failed, the breaker opens: every vote is refused at once (503) instead of
  waiting out its deadline, until a probe succeeds. (A broker that answers slowly under
  load is not "unreachable": its votes are still delivered within the deadline.)
- **Supervision.** When the broker answers again after an outage, or answers while sends
  keep failing, the producer is closed and a new one built. This is needed, not just
  prudent: kafka-python 3.0's idempotent producer never sends again after a batch it had
  already sent expires. `Sender._send_producer_data` then calls
  `TransactionManager.reset_producer_id()`, which clears the producer id but leaves the
  state READY; `init_producer_id()` acts only in UNINITIALIZED, so no new id is ever
  requested, and the sender neither sends nor even expires any later batch. No setting avoids
  it: `delivery_timeout_ms` must exceed `request_timeout_ms`, so a timed-out request is
  always retried (and thus "in retry") before its batch expires. docs/RELIABILITY.md has
  the reproduction.
- **Truth for /api/ready**: `can_deliver()` says whether this process can deliver.

A 503 means "not confirmed": a record the broker received before it stalled may still be
appended when it wakes. Sending the vote again is safe (one vote per user and poll).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from kafka import KafkaProducer
from kafka.errors import KafkaError

from db.singletons import PerProcess
from feedapp.outages import KAFKA
from votes import broker
from votes.broker import Probe
from votes.messages import VoteEvent

log = logging.getLogger(__name__)

# A send normally takes milliseconds; one pending this long makes the supervisor look.
OVERDUE_SECONDS = 1.0
# How often the supervisor looks while something is wrong, and how long a probe may take.
SUPERVISE_INTERVAL_SECONDS = 0.5
PROBE_TIMEOUT_SECONDS = 2.0
# Rebuilding is cheap, but not in a loop when the broker answers metadata and refuses
# records (e.g. too few in-sync replicas).
MIN_REBUILD_INTERVAL_SECONDS = 2.0
REFUSING = "votes are answered 503 at once until it answers; the producer is then replaced"


class VoteNotEnqueued(Exception):
    """The broker did not acknowledge the vote in time, or is known to be unreachable."""


class Action(enum.Enum):
    NOTHING = "nothing"
    REBUILD = "rebuild"


@dataclass
class DeliveryHealth:
    """What the process knows about delivering votes. Every method is given the time, so
    the rules are plain functions of what happened (and tested as such)."""

    unreachable_since: float | None = None  # breaker open: the broker did not answer a probe
    failing_since: float | None = None  # a send failed since the last success or rebuild
    last_rebuild: float = float("-inf")
    pending: dict[int, float] = field(default_factory=dict)  # send id -> when it began

    @property
    def refusing(self) -> bool:
        return self.unreachable_since is not None

    @property
    def can_deliver(self) -> bool:
        return self.unreachable_since is None and self.failing_since is None

    def needs_probe(self, now: float) -> bool:
        overdue = any(now - began >= OVERDUE_SECONDS for began in self.pending.values())
        return self.refusing or self.failing_since is not None or overdue

    def sent(self, ok: bool, now: float) -> None:
        if ok:
            self.failing_since = None
        elif self.failing_since is None:
            self.failing_since = now

    def after_probe(self, probe: Probe, now: float) -> Action:
        """The breaker's transitions. It opens when the broker refuses connections, or
        does not answer while a send has failed: a broker that is only slow still delivers
        within the deadline. Once it answers, a failing producer is replaced."""
        if probe is not Probe.ANSWERS:
            if self.unreachable_since is None and (
                probe is Probe.REFUSED or self.failing_since is not None
            ):
                self.unreachable_since = now
            return Action.NOTHING
        if not self.refusing and self.failing_since is None:
            return Action.NOTHING  # only slow: the pending sends will tell
        if now - self.last_rebuild < MIN_REBUILD_INTERVAL_SECONDS:
            return Action.NOTHING
        return Action.REBUILD

    def rebuilt(self, now: float) -> None:
        self.unreachable_since = None
        self.failing_since = None
        self.last_rebuild = now


def make_kafka_producer() -> KafkaProducer:
    """A producer with the app's settings, the vote topic's metadata already fetched."""
    timeout_ms = int(settings.KAFKA_PRODUCE_TIMEOUT_SECONDS * 1000)
    producer = KafkaProducer(
        bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
        client_id="feedapp-web",
        acks="all",
        enable_idempotence=True,
        linger_ms=1,
        # The producer gives up on a record before the request's own deadline, so no
        # record outlives its 503 in this process.
        delivery_timeout_ms=max(timeout_ms - 500, 1000),
        request_timeout_ms=max(timeout_ms - 600, 900),
        max_block_ms=1000,
        # Defaults wait up to 30 s: to bootstrap against a frozen broker, and between
        # reconnection attempts after an outage.
        bootstrap_timeout_ms=2000,
        reconnect_backoff_max_ms=1000,
        selector=broker.PollSelector,
        kafka_client=broker.ProducerNetClient,
    )
    try:
        producer.partitions_for(settings.KAFKA_VOTE_TOPIC)  # so sends never wait for it
    except KafkaError:
        producer.close(timeout=0)
        raise
    return producer


def _probe() -> Probe:
    return broker.probe(PROBE_TIMEOUT_SECONDS)


class VoteProducer:
    """A KafkaProducer with a circuit breaker and a supervisor thread that replaces it."""

    def __init__(
        self,
        make: Callable[[], KafkaProducer] = make_kafka_producer,
        probe: Callable[[], Probe] = _probe,
    ) -> None:
        self._make = make
        self._probe = probe
        self._lock = threading.Lock()  # guards _producer and health
        self._making = threading.Lock()  # one producer made at a time
        self._producer: KafkaProducer | None = None
        self.health = DeliveryHealth()
        self._next_send = 0
        self._generation = 0  # how many times the producer was replaced
        self._topic_ensured = False
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None

    # --- sending (event loop) --------------------------------------------------------------

    async def send(self, topic: str, key: bytes, value: bytes, deadline: float) -> None:
        """Send and wait until all in-sync replicas have it, by `deadline` (time.monotonic());
        VoteNotEnqueued if not. Everything counts against the deadline: making the first
        producer, handing the record over, and the wait for the acknowledgement."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            # Not sent, so certainly not applied; says nothing about the broker.
            raise VoteNotEnqueued("the deadline passed before the vote reached the producer")
        with self._lock:
            if self.health.refusing:
                KAFKA.failed("no metadata answer", REFUSING)
                raise VoteNotEnqueued("Kafka is unreachable")
            send_id = self._next_send = self._next_send + 1
            began = self.health.pending[send_id] = time.monotonic()
            producer, generation = self._producer, self._generation
        delivered: bool | None = False  # None: no verdict on the broker
        try:
            async with asyncio.timeout(remaining):
                if producer is None:
                    producer, generation = await self._producer_now()
                await self._send(producer, topic, key, value)
            delivered = True
        except TimeoutError as exc:
            waited = time.monotonic() - began
            # A record given less time than a send normally needs says nothing about the
            # broker (the request spent its time before the send, e.g. waiting for the
            # database): no reason to probe, let alone replace the producer.
            if waited < OVERDUE_SECONDS:
                delivered = None
            raise VoteNotEnqueued(f"not acknowledged within {waited:.1f} s") from exc
        finally:
            with self._lock:
                self.health.pending.pop(send_id, None)
                # What a replaced producer does no longer says anything about delivery.
                if generation == self._generation and delivered is not None:
                    self.health.sent(delivered, time.monotonic())
            if delivered is False:
                self._wake.set()

    async def _producer_now(self) -> tuple[KafkaProducer, int]:
        try:
            return await sync_to_async(self._first_producer, thread_sensitive=False)()
        except (KafkaError, OSError) as exc:
            raise VoteNotEnqueued(f"no Kafka producer: {exc!r}") from exc

    @staticmethod
    async def _send(producer: KafkaProducer, topic: str, key: bytes, value: bytes) -> None:
        """Hand the record over and wait for its acknowledgement (the caller bounds the
        wait). kafka-python completes the future on its sender thread."""
        loop = asyncio.get_running_loop()
        acked: asyncio.Future[Any] = loop.create_future()

        def done(result: Any) -> None:
            loop.call_soon_threadsafe(_resolve, acked, result)

        try:
            producer.send(topic, key=key, value=value).add_both(done)
        except (KafkaError, OSError) as exc:
            raise VoteNotEnqueued(repr(exc)) from exc
        result = await acked
        if isinstance(result, BaseException):
            raise VoteNotEnqueued(repr(result))

    def _first_producer(self) -> tuple[KafkaProducer, int]:
        """The producer, made now if none exists yet (the first vote of the process)."""
        self._start_supervisor()
        with self._making:
            if self._producer is None:
                producer = self._new_producer()
                with self._lock:
                    self._producer = producer
                log.info("kafka producer ready for topic %s", settings.KAFKA_VOTE_TOPIC)
            return self._producer, self._generation

    def _new_producer(self) -> KafkaProducer:
        if not self._topic_ensured:
            broker.ensure_topic(
                settings.KAFKA_VOTE_TOPIC,
                settings.KAFKA_VOTE_TOPIC_PARTITIONS,
                settings.KAFKA_VOTE_TOPIC_REPLICATION,
            )
            self._topic_ensured = True
        return self._make()

    # --- supervision (its own thread) ------------------------------------------------------

    def _start_supervisor(self) -> None:
        with self._lock:
            if self._supervisor is None:
                self._supervisor = threading.Thread(
                    target=self._supervise, name="vote-producer-supervisor", daemon=True
                )
                self._supervisor.start()

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(SUPERVISE_INTERVAL_SECONDS)
            self._wake.clear()
            with self._lock:
                if not self.health.needs_probe(time.monotonic()):
                    continue
                was_refusing = self.health.refusing
            probe = self._probe()
            with self._lock:
                action = self.health.after_probe(probe, time.monotonic())
                opened = self.health.refusing and not was_refusing
            if opened:
                KAFKA.failed("no metadata answer", REFUSING)
            if action is Action.REBUILD and not self._stopping.is_set():
                self._rebuild()

    def _rebuild(self) -> None:
        with self._making:
            try:
                producer = self._new_producer()
            except (KafkaError, OSError) as exc:
                log.warning("Kafka answers, but making a new vote producer failed: %r", exc)
                return
            with self._lock:
                now = time.monotonic()
                old, self._producer = self._producer, producer
                self._generation += 1
                failing = now - (self.health.failing_since or now)
                self.health.rebuilt(now)
        if KAFKA.down:
            KAFKA.ended()
        else:
            log.warning("vote producer replaced after %.1f s of failed deliveries", failing)
        if old is not None:
            threading.Thread(
                target=_close, args=(old,), name="vote-producer-close", daemon=True
            ).start()

    # --- state and shutdown ----------------------------------------------------------------

    def can_deliver(self) -> bool:
        """False while the broker is known unreachable or sends fail (for /api/ready)."""
        with self._lock:
            return self.health.can_deliver

    def close(self) -> None:
        """Stop supervising; deliver what is buffered (bounded wait) and close."""
        self._stopping.set()
        self._wake.set()
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            _close(producer)


def _close(producer: KafkaProducer) -> None:
    """Close a producer: deliver what it can within the produce deadline, drop the rest."""
    wait = settings.KAFKA_PRODUCE_TIMEOUT_SECONDS + 1
    try:
        producer.close(timeout=wait)
        return
    except KafkaError as exc:
        log.info("a replaced vote producer still holds records (%r); dropping them", exc)
    # KafkaProducer.close() flushes first and raises, without closing, when a record is
    # still pending; a producer without a producer id never expires its records. Its
    # sender's force_close() fails them (as close() itself would after its flush).
    sender = getattr(producer, "_sender", None)
    if sender is not None:
        sender.force_close()
        sender.join(wait)
    try:
        producer.close(timeout=0)
    except KafkaError as exc:
        log.warning("a replaced vote producer could not be closed: %r", exc)


def _resolve(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


# --- the process's producer ------------------------------------------------------------------


def _make_vote_producer() -> VoteProducer:
    atexit.register(close_producer)
    return VoteProducer()


def _close_vote_producer(vote_producer: VoteProducer) -> None:
    with contextlib.suppress(KafkaError):
        vote_producer.close()


_vote_producer: PerProcess[VoteProducer] = PerProcess(_make_vote_producer, _close_vote_producer)


def get_vote_producer() -> VoteProducer:
    """This process's vote producer (its Kafka producer is made on the first vote)."""
    return _vote_producer.get()


def close_producer() -> None:
    """Deliver what is buffered (bounded wait) and close."""
    _vote_producer.close()


def produce_deadline(since: float | None = None) -> float:
    """When a vote submitted at `since` (time.monotonic(); default now) must be answered:
    the produce deadline counts from the request's start, not from the moment the record
    is sent."""
    began = time.monotonic() if since is None else since
    return began + settings.KAFKA_PRODUCE_TIMEOUT_SECONDS


async def produce_vote(event: VoteEvent, deadline: float) -> None:
    """Send the event and wait until all in-sync replicas have it, by `deadline`
    (time.monotonic()); VoteNotEnqueued if not."""
    await get_vote_producer().send(settings.KAFKA_VOTE_TOPIC, event.key(), event.encode(), deadline)


def can_deliver() -> bool:
    """False while this process's producer cannot deliver (True before its first vote)."""
    vote_producer = _vote_producer.current
    return vote_producer is None or vote_producer.can_deliver()
