"""Issue 12, item 10: with 3 replicas or more the vote topic gets min.insync.replicas, so
that acks=all means "on that many replicas"."""

from __future__ import annotations

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
