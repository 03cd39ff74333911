"""Issue 12, item 10: with 3 replicas or more the vote topic gets min.insync.replicas, so
that acks=all means "on that many replicas"."""

from __future__ import annotations

import logging
import time
import uuid

import pytest
from django.test import override_settings
from kafka.admin import ConfigResource, ConfigResourceType

from votes import broker


@pytest.mark.parametrize(
    ("replicas", "setting", "expected"),
    [
        (1, 2, {}),  # one broker: 2 in-sync replicas could never be met
        (2, 2, {}),  # 2 of 2 would stop every write while one broker is down
        (3, 2, {"min.insync.replicas": "2"}),
        (5, 3, {"min.insync.replicas": "3"}),
    ],
)
def test_min_insync_replicas_follow_the_replication_factor(
    replicas: int, setting: int, expected: dict[str, str]
) -> None:
    with override_settings(KAFKA_VOTE_TOPIC_MIN_INSYNC_REPLICAS=setting):
        assert broker.topic_configs(replicas) == expected


def test_a_min_insync_above_the_replicas_is_refused() -> None:
    with override_settings(KAFKA_VOTE_TOPIC_MIN_INSYNC_REPLICAS=4), pytest.raises(ValueError):
        broker.topic_configs(3)


def _topic_config(name: str) -> dict[str, str]:
    admin = broker.admin_client()
    try:
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name, ["min.insync.replicas"])]
        )
    finally:
        admin.close()
    found = described["topic"][name]
    return {
        key: value["value"] if isinstance(value, dict) else value for key, value in found.items()
    }


def test_the_broker_creates_the_topic_with_the_setting() -> None:
    """On the real (single) broker: the config reaches the topic it creates."""
    name, plain = (f"test-durability-{uuid.uuid4().hex[:10]}" for _ in range(2))
    assert broker.ensure_topic(name, 1, 1, min_insync_replicas=1)
    assert broker.ensure_topic(plain, 1, 1)
    admin = broker.admin_client()
    try:
        # Set on the topic itself (the broker lists only what differs from its defaults).
        assert _topic_config(name).get("min.insync.replicas") == "1"
        assert "min.insync.replicas" not in _topic_config(plain)
    finally:
        admin.delete_topics([name, plain])
        admin.close()


def test_a_topic_that_exists_is_kept_and_its_shortfalls_are_logged(caplog) -> None:
    """A vote topic made by hand (or by an older release) is not changed, but each way it
    falls short of what it would be created with is a warning for the operator."""
    name = f"test-durability-{uuid.uuid4().hex[:10]}"

    def warnings() -> list[str]:
        ours = [r for r in caplog.records if r.name == "votes.broker"]
        return [r.getMessage() for r in ours if r.levelno >= logging.WARNING]

    assert broker.ensure_topic(name, 1, 1)
    try:
        with override_settings(KAFKA_VOTE_TOPIC_MIN_INSYNC_REPLICAS=2):
            # The broker may not describe a topic it has just created: ask again a while.
            deadline = time.monotonic() + 20
            while not warnings() and time.monotonic() < deadline:
                with caplog.at_level(logging.WARNING, logger="votes.broker"):
                    assert not broker.ensure_topic(name, 3, 3)
                time.sleep(0.2)
        logged = warnings()
        assert len(logged) == 3, logged
        assert "1 partitions, fewer than the 3 configured" in logged[0]
        assert "1 replicas, fewer than the 3 configured" in logged[1]
        assert "min.insync.replicas=1, below the 2" in logged[2]
        assert all("left as it is" in warning for warning in logged)

        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="votes.broker"):
            assert not broker.ensure_topic(name, 1, 1)  # just as configured: nothing to say
        assert warnings() == []
    finally:
        broker.delete_topic(name)
