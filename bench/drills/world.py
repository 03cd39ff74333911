"""What a drill runs against: a stack profile's services, the project's own processes
(uvicorn web servers, `consume_votes` consumers) started as production starts them, a
vote topic and consumer group of the drill's own, users and polls.

Processes are tracked by the World and stopped by it, by pid, never by name.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic

from bench.drills.http import HttpConnection
from stack.processes import (
    WebServer,
    consume_votes_command,
    free_port,
    start_web_server,
    uvicorn_command,
)
from stack.profiles import PROJECT_ROOT, Profile


@dataclass
class Consumer:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    started: float = field(default_factory=time.time)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def ready_at(self) -> float | None:
        """When it asked to join the group (its "consuming" line), after start-up."""
        for line in self.log.read_text(errors="replace").splitlines():
            match = _CONSUMING.search(line)
            if match and _stamp(match.group(1), match.group(2)) >= self.started - 1:
                return _stamp(match.group(1), match.group(2))
        return None

    def assignments(self) -> list[tuple[float, list[int]]]:
        """(wall time, partitions held) after each rebalance, from its log."""
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            match = _ASSIGNED.search(line)
            if match:
                stamp = _stamp(match.group(1), match.group(2))
                if stamp >= self.started - 1:
                    found.append((stamp, [int(p) for p in re.findall(r"\d+", match.group(3))]))
        return found


def _stamp(seconds: str, millis: str) -> float:
    """A log line's time (local, as the logging module writes it) as a wall time."""
    return time.mktime(time.strptime(seconds, "%Y-%m-%d %H:%M:%S")) + int(millis) / 1000


# "<time> INFO votes.runner [-] message" (or "votes.runner: message" before request ids).
_CONSUMING = re.compile(r"^(\S+ \S+),(\d+) INFO \S+(?: \[[^\]]*\]|:) consuming ")
_ASSIGNED = re.compile(
    r"^(\S+ \S+),(\d+) INFO \S+(?: \[[^\]]*\]|:) partitions .*; now holding \[([^\]]*)\]"
)


@dataclass
class World:
    """One drill's processes, topic, group and data, on one stack profile."""

    profile: Profile
    settings_module: str
    log_dir: Path
    partitions: int = 12
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    webs: dict[str, WebServer] = field(default_factory=dict)
    consumers: dict[str, Consumer] = field(default_factory=dict)
    user_ids: list[int] = field(default_factory=list)
    polls: dict[int, list[int]] = field(default_factory=dict)  # poll id -> option ids

    @property
    def topic(self) -> str:
        return f"drill-votes-{self.tag}"

    @property
    def group(self) -> str:
        return f"drill-consumers-{self.tag}"

    @property
    def database_url(self) -> str:
        return self.profile.database_url

    def env(self, log_level: str = "WARNING") -> dict[str, str]:
        """The environment of the project's processes in this drill."""
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": self.settings_module,
            "FEEDAPP_ENV_FILE": "/nonexistent",
            "DATABASE_URL": self.profile.database_url,
            "VALKEY_URL": self.profile.valkey_url,
            "KAFKA_BOOTSTRAP_SERVERS": self.profile.kafka_bootstrap,
            "KAFKA_VOTE_TOPIC": self.topic,
            "KAFKA_VOTE_TOPIC_PARTITIONS": str(self.partitions),
            "KAFKA_CONSUMER_GROUP": self.group,
            "DJANGO_DEBUG": "false",
            "LOG_LEVEL": log_level,
        }

    # --- the vote topic ------------------------------------------------------------------

    def create_topic(self) -> None:
        admin = KafkaAdminClient(bootstrap_servers=self.profile.kafka_bootstrap)
        try:
            admin.create_topics([NewTopic(self.topic, self.partitions, 1)])
        finally:
            admin.close()

    def delete_topic(self) -> None:
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=self.profile.kafka_bootstrap, bootstrap_timeout_ms=5000
            )
        except Exception:
            return
        try:
            admin.delete_topics([self.topic])
        except Exception:  # noqa: S110
            pass
        finally:
            admin.close()

    def end_offsets(self) -> dict[int, int]:
        """Partition -> the offset after its last record."""
        consumer = KafkaConsumer(
            bootstrap_servers=self.profile.kafka_bootstrap,
            bootstrap_timeout_ms=5000,
            enable_auto_commit=False,
        )
        try:
            partitions = [TopicPartition(self.topic, p) for p in range(self.partitions)]
            return {tp.partition: off for tp, off in consumer.end_offsets(partitions).items()}
        finally:
            consumer.close()

    # --- processes -----------------------------------------------------------------------

    def start_web(self, name: str) -> WebServer:
        """uvicorn as production runs it, on a free loopback port; waits for /api/health."""
        port = free_port()
        command = uvicorn_command(
            port, 1, "--log-level", "warning", "--timeout-graceful-shutdown", "10"
        )
        web = start_web_server(command, port, self.log_dir / f"web-{name}.log", self.env())
        self.webs[name] = web
        return web

    def start_consumer(self, name: str, batch_size: int = 500) -> Consumer:
        """`consume_votes` as a static group member named `name` (as a deployment with
        stable consumer names runs it), output to its own log."""
        log = self.log_dir / f"consumer-{name}.log"
        command = consume_votes_command(
            batch_size=batch_size, poll_timeout_ms=100, stats_interval=5, instance_id=name
        )
        with log.open("ab") as out:
            proc = subprocess.Popen(
                command,
                cwd=PROJECT_ROOT,
                env=self.env(log_level="INFO"),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        consumer = Consumer(name, proc, log)
        self.consumers[name] = consumer
        return consumer

    def stop_all(self) -> None:
        """SIGTERM every process this World started, then SIGKILL what is left after 30 s."""
        for web in self.webs.values():
            web.terminate()
        for consumer in self.consumers.values():
            if consumer.alive:
                consumer.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in [w.proc for w in self.webs.values()] + [
            c.proc for c in self.consumers.values()
        ]:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    # --- data ----------------------------------------------------------------------------

    def make_users(self, count: int) -> list[int]:
        """Active users with unusable passwords, in one statement (sessions come from
        tokens; registration is not what a drill exercises)."""
        with psycopg.connect(self.database_url) as conn:
            rows = conn.execute(
                'INSERT INTO "user" (username, email, password) '
                "SELECT 'd' || %(tag)s || '_' || n, 'd' || %(tag)s || '_' || n || '@drill.test', "
                "'!drill' FROM generate_series(1, %(count)s) AS n RETURNING id",
                {"tag": self.tag, "count": count},
            ).fetchall()
        self.user_ids = [row[0] for row in rows]
        return self.user_ids

    async def make_polls(self, count: int, options: int, cookie: str) -> dict[int, list[int]]:
        """Public polls made through the API by the user of `cookie`."""
        web = next(iter(self.webs.values()))
        client = HttpConnection(web.port)
        for n in range(count):
            answer = await client.request(
                "POST",
                "/api/poll/create",
                {
                    "question": f"Drill {self.tag} poll {n}?",
                    "options": [f"option {o}" for o in range(options)],
                    "poll_perms": "public_vote",
                },
                cookie,
            )
            if answer.status != 201:
                raise RuntimeError(f"creating a poll answered {answer.status}: {answer.body!r}")
            poll = answer.json()
            self.polls[poll["id"]] = poll["option_ids"]
        await client.close()
        return self.polls


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False
