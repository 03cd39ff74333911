"""Kafka administration shared by the web process and the consumer, and the fixes to
kafka-python's clients that they use."""

from __future__ import annotations

import contextlib
import enum
import logging
import selectors
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from kafka import KafkaAdminClient, KafkaConsumer
from kafka.admin import ConfigResource, ConfigResourceType, MemberToRemove, NewTopic
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.net.compat import KafkaNetClient
from kafka.structs import TopicPartition

log = logging.getLogger(__name__)


class PollSelector(selectors.PollSelector):
    """The selector for kafka-python's clients (their `selector` option).

    kafka-python waits for each read and write by registering the socket and
    unregistering it after, first asking `get_key`, which for a socket not registered
    raises a KeyError whose message is the socket's repr: two system calls
    (getsockname, getpeername) that nobody reads. With the default epoll selector every
    registration is an epoll_ctl call as well. For a client with a couple of sockets
    poll(2) needs none of those: `strace -c` counted 18 system calls per vote in the
    web process's producer with epoll, 10 with this.
    """

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        return self._fd_to_key[fd]  # type: ignore[attr-defined]  # the base class's map


class ProducerNetClient(KafkaNetClient):
    """The network client for the web process's producer (its `kafka_client` option): the
    producer's sender thread no longer spins while a broker holds its requests.

    kafka-python 3.0.12's Sender waits `connection_delay(node)` milliseconds for a node
    that has records to send but is not ready. KafkaNetClient answers 0 for a connected
    node (one that waits for answers to as many requests as it may have in flight), and
    seconds, not milliseconds, for one backing off before a reconnect. So with a frozen
    broker the sender polled with a zero timeout until its requests timed out (4.4 s):
    a bare producer at 150 records/s used 4.4 s of CPU in a 6 s freeze, and in the web
    process the GIL it held slowed the event loop (in the kafka drill it fell 0.2 to
    0.6 s behind every 0.3 s, and requests queued before the handler). The Java client
    waits for a connected node's answers (a socket event, or the request timeout, wakes
    the sender); so does this, and it waits a backoff in milliseconds.
    """

    def connection_delay(self, node_id: Any) -> float:
        conn = self._manager._conns.get(node_id)
        if conn is not None and conn.connected:
            return float("inf")
        return float(super().connection_delay(node_id)) * 1000


class VoteConsumer(KafkaConsumer):
    """kafka-python 3.0.12's KafkaConsumer with three changes (the vote consumer's class,
    votes.runner.make_consumer): its poll no longer spins while the group's coordinator
    does not answer, it joins again when the library has dropped a finished rebalance,
    and `poll_until` returns as soon as its caller has something to do.

    Each round of KafkaConsumer.poll waits for records at most until the next heartbeat is
    due (`time_to_next_poll`), counted from the last heartbeat *sent*. While a heartbeat
    waits for a frozen broker's answer no new one is sent, so that time stays 0 and poll
    goes round without waiting until its own timeout: 4.46 s of CPU in a 6 s freeze,
    taken from the web processes beside it. Here a round that brought nothing while a
    heartbeat is due is followed by a short pause (what the heartbeat thread needs to
    send it, in the normal case), so a freeze costs next to nothing and records that
    arrive meanwhile wait SPIN_PAUSE_SECONDS at most.
    """

    SPIN_PAUSE_SECONDS = 0.01
    # How often poll_until asks its caller whether to return.
    UNTIL_CHECK_MS = 50

    def poll_until(
        self, until: Callable[[], bool], timeout_ms: int, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumerRecord]]:
        """KafkaConsumer.poll, which also returns (with no records) once `until()` is
        true, asked every UNTIL_CHECK_MS.

        A rebalance happens inside a poll, and the runner's newly assigned partitions
        wait, paused, until it has sought them to their stored offsets between polls. A
        poll that was given partitions waited out its whole timeout before that (0.46 s
        of the 2.3 s from a consumer's start to its first batch); its in-flight fetches
        go on across the slices.
        """
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            left_ms = max(0, int((deadline - time.monotonic()) * 1000))
            slice_ms = min(left_ms, self.UNTIL_CHECK_MS)
            records = self.poll(timeout_ms=slice_ms, max_records=max_records)
            if records or slice_ms == left_ms or until():
                return records

    def _poll_once(self, timer: Any, max_records: int, update_offsets: bool = True) -> Any:
        self._rejoin_if_a_rebalance_was_dropped()
        records = super()._poll_once(timer, max_records, update_offsets=update_offsets)
        if not records and not timer.expired and self._coordinator.time_to_next_poll() == 0:
            left = timer.timeout_ms  # None: poll without a timeout
            pause = self.SPIN_PAUSE_SECONDS
            time.sleep(pause if left is None else min(pause, left / 1000))
        return records

    def _rejoin_if_a_rebalance_was_dropped(self) -> None:
        """Join again when kafka-python 3.0.12 has dropped a finished rebalance.

        A poll whose time runs out during a rebalance leaves the join in flight for the
        next poll to wait on; but if it finishes in between, and by then nothing asks
        for a rejoin (a leader's own assignment cleared the metadata change that asked
        for it), no poll ever takes its result: the new assignment is never applied and
        heartbeats stay disabled, so the broker expels the member after its session
        timeout while it goes on fetching its old partitions (seen in
        test_a_rebalance_during_an_outage_loses_nothing, and made certain by adding a
        partition while polling with a short timeout). Asking for a rejoin lets the
        next poll join again, as it does when a rejoin is still due.
        """
        coordinator = self._coordinator
        join = coordinator._join_task
        if join is None or not join.is_done or not coordinator.rejoining:
            return
        if not coordinator.need_rejoin():
            log.warning(
                "kafka-python dropped a finished rebalance of group %s; joining again",
                coordinator.group_id,
            )
            coordinator.request_rejoin()


def _reachable(servers: list[str], timeout: float) -> bool:
    """True when some bootstrap server accepts a TCP connection.

    kafka-python's clients retry an unreachable bootstrap list for a long time, so a
    cheap connect check comes first.
    """
    for server in servers:
        host, _, port = server.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
                return True
        except OSError:
            continue
    return False


def admin_client(timeout: float = 5.0, servers: list[str] | None = None) -> KafkaAdminClient:
    """An admin client for `servers` (default: the settings'); KafkaError if none answers."""
    servers = servers or settings.KAFKA_BOOTSTRAP_SERVERS
    if not _reachable(servers, timeout):
        raise KafkaError(f"no Kafka bootstrap server reachable: {servers}")
    timeout_ms = int(timeout * 1000)
    return KafkaAdminClient(
        bootstrap_servers=servers,
        client_id="feedapp-admin",
        request_timeout_ms=timeout_ms,
        # The constructor waits for a first metadata answer, 30 s by default: a frozen
        # broker accepts the connection and never answers.
        bootstrap_timeout_ms=timeout_ms,
    )


class Probe(enum.Enum):
    ANSWERS = "answers"
    REFUSED = "refused"  # no bootstrap server accepts a connection: certainly down
    SILENT = "silent"  # connected, but no metadata answer in time: frozen, or only slow


def probe(timeout: float, servers: list[str] | None = None) -> Probe:
    """Whether the cluster answers a metadata request within about `timeout` seconds."""
    servers = servers or settings.KAFKA_BOOTSTRAP_SERVERS
    if not _reachable(servers, timeout):
        return Probe.REFUSED
    try:
        admin = admin_client(timeout, servers)
    except (KafkaError, OSError, ValueError):
        return Probe.SILENT
    try:
        admin.describe_cluster()
        return Probe.ANSWERS
    except (KafkaError, OSError, ValueError):
        return Probe.SILENT
    finally:
        admin.close()


def cluster_answers(timeout: float, servers: list[str] | None = None) -> bool:
    """True when the cluster answers a metadata request within about `timeout` seconds."""
    return probe(timeout, servers) is Probe.ANSWERS


def remove_static_member(group: str, instance_id: str) -> None:
    """Take a static member out of its group now, so that the others get its partitions
    without waiting for its session to expire (a stopping consumer does this last)."""
    try:
        admin = admin_client()
    except KafkaError as exc:
        log.warning("could not leave group %s as %s: %r", group, instance_id, exc)
        return
    try:
        admin.remove_group_members(group, [MemberToRemove(group_instance_id=instance_id)])
        log.info("left group %s as static member %s", group, instance_id)
    except KafkaError as exc:
        log.warning("could not leave group %s as %s: %r", group, instance_id, exc)
    finally:
        admin.close()


class ClusterProbe:
    """Asks the cluster for its metadata, reusing one admin client between calls (made
    again after a failure). For one caller at a time (e.g. a single-thread executor)."""

    def __init__(self, servers: list[str] | None = None) -> None:
        self._servers = servers
        self._admin: KafkaAdminClient | None = None

    def answers(self, timeout: float) -> bool:
        """True when the cluster answers a metadata request within about `timeout` seconds."""
        try:
            if self._admin is None:
                self._admin = admin_client(timeout, self._servers)
            self._admin.describe_cluster()
            return True
        except (KafkaError, OSError, ValueError) as exc:
            log.info("kafka probe failed: %r", exc)
            self.close()
            return False

    def close(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            with contextlib.suppress(Exception):
                admin.close()


MIN_INSYNC = "min.insync.replicas"


def topic_configs(
    replication_factor: int, min_insync_replicas: int | None = None
) -> dict[str, str]:
    """The configs a new topic is created with: `min.insync.replicas`, so that `acks=all`
    means "written to at least that many replicas" and not "to whichever are in sync,
    maybe only the leader".

    Without an explicit value: KAFKA_VOTE_TOPIC_MIN_INSYNC_REPLICAS (2) once there are
    3 replicas or more, so one broker may fail and writes go on; with fewer replicas the
    broker's default (1), since 2 of 2 would stop writes whenever one broker is down.
    """
    if min_insync_replicas is None:
        if replication_factor < 3:
            return {}
        min_insync_replicas = settings.KAFKA_VOTE_TOPIC_MIN_INSYNC_REPLICAS
    if not 1 <= min_insync_replicas <= replication_factor:
        raise ValueError(
            f"min.insync.replicas {min_insync_replicas} does not fit {replication_factor} replicas"
        )
    return {MIN_INSYNC: str(min_insync_replicas)}


def delete_topic(name: str) -> None:
    """Delete a topic (the tests' and benchmarks' own topics, once they are done)."""
    admin = admin_client()
    try:
        admin.delete_topics([name])
    finally:
        admin.close()


def ensure_topic(
    name: str, partitions: int, replication_factor: int, min_insync_replicas: int | None = None
) -> bool:
    """Create the topic if missing (configs: `topic_configs`); True when this call created it.

    A topic that exists is left as it is (changing it is the operator's decision), but
    each way it falls short of what it would be created with is logged as a warning.
    """
    configs = topic_configs(replication_factor, min_insync_replicas)
    admin = admin_client()
    try:
        admin.create_topics(
            [
                NewTopic(
                    name,
                    num_partitions=partitions,
                    replication_factor=replication_factor,
                    topic_configs=configs,
                )
            ]
        )
        log.info("created topic %s with %d partitions, configs %s", name, partitions, configs)
        return True
    except TopicAlreadyExistsError:
        wanted = TopicShape(partitions, replication_factor, int(configs.get(MIN_INSYNC, "1")))
        existing = _existing_shape(admin, name)
        for shortfall in wanted.shortfalls(existing) if existing else []:
            log.warning("topic %s exists with %s; it is left as it is", name, shortfall)
        return False
    finally:
        admin.close()


@dataclass(frozen=True)
class TopicShape:
    """What makes a vote topic durable and parallel enough."""

    partitions: int
    replication_factor: int  # the fewest replicas of any partition
    min_insync_replicas: int

    def shortfalls(self, existing: TopicShape) -> list[str]:
        """How `existing` falls short of this shape, in words for an operator."""
        found = []
        if existing.partitions < self.partitions:
            found.append(
                f"{existing.partitions} partitions, fewer than the {self.partitions} "
                "configured (KAFKA_VOTE_TOPIC_PARTITIONS): fewer consumers can share the "
                "work (adding partitions moves polls between them: only with the web "
                "processes stopped and the consumers caught up)"
            )
        if existing.replication_factor < self.replication_factor:
            found.append(
                f"{existing.replication_factor} replicas, fewer than the "
                f"{self.replication_factor} configured (KAFKA_VOTE_TOPIC_REPLICATION): "
                "a broker's loss can lose acknowledged votes"
            )
        if existing.min_insync_replicas < self.min_insync_replicas:
            found.append(
                f"{MIN_INSYNC}={existing.min_insync_replicas}, below the "
                f"{self.min_insync_replicas} it would be created with "
                "(KAFKA_VOTE_TOPIC_MIN_INSYNC_REPLICAS): acks=all may then mean only the "
                "leader; set it with kafka-configs --alter"
            )
        return found


def _existing_shape(admin: KafkaAdminClient, name: str) -> TopicShape | None:
    """The topic's shape as the broker describes it; None when it cannot say yet (a topic
    another process has just created may not be in its metadata yet)."""
    try:
        (topic,) = admin.describe_topics([name])
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name, [MIN_INSYNC])], config_filter="all"
        )
    except KafkaError as exc:
        log.info("could not describe topic %s: %r", name, exc)
        return None
    found = described.get("topic", {}).get(name, {}).get(MIN_INSYNC)
    if topic["error_code"] or not topic["partitions"] or found is None:
        return None
    return TopicShape(
        partitions=len(topic["partitions"]),
        replication_factor=min(len(p["replica_nodes"]) for p in topic["partitions"]),
        min_insync_replicas=int(found["value"] if isinstance(found, dict) else found),
    )
