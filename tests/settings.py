"""Settings for the test suite: the `test` stack profile, never the development one."""

import os
import uuid

from stack.profiles import get_profile

_profile = get_profile("test")
os.environ.setdefault("DATABASE_URL", _profile.database_url)
os.environ.setdefault("VALKEY_URL", _profile.valkey_url)
os.environ.setdefault("KAFKA_BOOTSTRAP_SERVERS", _profile.kafka_bootstrap)
# A vote topic of this run's own (inherited by consumer processes the tests start).
os.environ.setdefault("KAFKA_VOTE_TOPIC", f"test-vote-event-{uuid.uuid4().hex[:12]}")
os.environ.setdefault("KAFKA_VOTE_TOPIC_PARTITIONS", "4")
os.environ.setdefault("FEEDAPP_ENV_FILE", "/nonexistent")  # a developer's .env must not leak in

from feedapp.settings import *  # noqa: E402,F403
