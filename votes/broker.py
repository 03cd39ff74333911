"""Kafka administration shared by the web process and the consumer."""

from __future__ import annotations

import enum
import logging
import socket

from django.conf import settings
from kafka import KafkaAdminClient
from kafka.admin import MemberToRemove, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

log = logging.getLogger(__name__)


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


def ensure_topic(name: str, partitions: int, replication_factor: int) -> bool:
    """Create the topic if missing; True when this call created it."""
    admin = admin_client()
    try:
        admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=replication_factor)]
        )
        log.info("created topic %s with %d partitions", name, partitions)
        return True
    except TopicAlreadyExistsError:
        return False
    finally:
        admin.close()
