"""Running the real vote consumer for tests: in a thread, or as a separate process."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

from stack.processes import consume_votes_command
from stack.profiles import PROJECT_ROOT
from votes.runner import RunnerConfig, Stats, run


@contextmanager
def consumer_thread(
    topic: str, group: str, batch_size: int = 500, poll_timeout_ms: int = 100
) -> Iterator[threading.Event]:
    """The runner in a background thread of this process until the block ends."""
    stop = threading.Event()
    result: list[Stats] = []
    config = RunnerConfig(
        list(settings.KAFKA_BOOTSTRAP_SERVERS),
        topic,
        group,
        batch_size,
        poll_timeout_ms=poll_timeout_ms,
        stats_interval_seconds=5,
    )
    thread = threading.Thread(target=lambda: result.append(run(config, stop)), daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive(), "the consumer did not stop"


def start_consumer_process(
    topic: str,
    group: str,
    log: Path,
    batch_size: int = 500,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """`manage.py consume_votes` against the test stack (and `env`), output to `log`."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", **(env or {})}
    with log.open("ab") as out:
        return subprocess.Popen(
            consume_votes_command(topic, group, batch_size, poll_timeout_ms=100, stats_interval=1),
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop_consumer_process(proc: subprocess.Popen[bytes], timeout: float = 30) -> int:
    """SIGTERM and wait; the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=timeout)
