"""Ports, folders and connection URLs of each local stack profile."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STACK_ROOT = Path(os.environ.get("FEEDAPP_STACK_ROOT", PROJECT_ROOT / ".stack"))
CACHE_DIR = STACK_ROOT / "cache"
# Shifts every port, so that two checkouts can each run their own stacks side by side.
PORT_OFFSET = int(os.environ.get("FEEDAPP_STACK_PORT_OFFSET", "0"))


@dataclass(frozen=True)
class Profile:
    name: str
    pg_port: int
    valkey_port: int
    kafka_port: int
    kafka_controller_port: int
    database: str

    @property
    def data_dir(self) -> Path:
        return STACK_ROOT / self.name

    @property
    def database_url(self) -> str:
        return f"postgres://feedapp@127.0.0.1:{self.pg_port}/{self.database}"

    @property
    def valkey_url(self) -> str:
        return f"valkey://127.0.0.1:{self.valkey_port}/0"

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"


# Every port lies outside Linux's ephemeral range (32768-60999): a busy client's outgoing
# connection can hold such a port as its local end and make the server's bind fail.
def _profile(name: str, pg: int, valkey: int, kafka: int, database: str) -> Profile:
    o = PORT_OFFSET
    ports = (pg + o, valkey + o, kafka + o, kafka + 1 + o)
    if not all(1024 <= port < 32768 or 61000 <= port <= 65535 for port in ports):
        raise SystemExit(
            f"FEEDAPP_STACK_PORT_OFFSET={o} puts the {name} stack's ports {ports} in the "
            "ephemeral range 32768-60999 or outside 1024-65535; choose an offset between "
            "-2700 and 1700"
        )
    return Profile(name, *ports, database)


PROFILES = {
    "dev": _profile("dev", 15432, 63790, 19092, "feedapp"),
    "test": _profile("test", 15442, 63800, 19192, "feedapp_test"),
    # Benchmarks get a stack of their own: their data never mixes with dev or test data.
    "bench": _profile("bench", 15452, 63810, 19292, "feedapp_bench"),
    # Fault drills stop and freeze their services: a stack of their own too.
    "drill": _profile("drill", 15462, 63820, 19052, "feedapp_drill"),
}


def get_profile(name: str | None = None) -> Profile:
    """The profile named, or the one in FEEDAPP_STACK_PROFILE, or `dev`."""
    name = name or os.environ.get("FEEDAPP_STACK_PROFILE", "dev")
    try:
        return PROFILES[name]
    except KeyError:
        raise SystemExit(f"unknown stack profile {name!r}; known: {', '.join(PROFILES)}") from None
