"""A single-node KRaft Kafka broker assembled from Maven Central jars."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import uuid
from pathlib import Path

from stack.process import (
    StackError,
    ensure_port_free,
    read_pid,
    spawn,
    terminate,
    wait_until,
)
from stack.profiles import CACHE_DIR, Profile

RESOURCES = Path(__file__).resolve().parent / "resources"
POM = RESOURCES / "kafka-pom.xml"
# Pinned: Maven 3.8 would otherwise fall back to an old dependency plugin.
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
HEAP = "512m"


def kafka_version() -> str:
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", POM.read_text())
    assert match, "kafka.version missing from the POM"
    return match.group(1)


def libs_dir() -> Path:
    """The broker's jars, fetched with Maven on first use and cached."""
    libs = CACHE_DIR / f"kafka-{kafka_version()}" / "libs"
    marker = libs / ".complete"
    if marker.exists():
        return libs
    if shutil.which("java") is None:
        raise StackError("kafka: `java` not found; Kafka 4.x needs Java 17 or newer")
    if shutil.which("mvn") is None:
        raise StackError("kafka: `mvn` not found; Maven fetches the broker's jars")
    shutil.rmtree(libs, ignore_errors=True)
    libs.mkdir(parents=True)
    print(f"kafka: fetching Kafka {kafka_version()} jars with Maven (once)...", flush=True)
    result = subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(POM),
            f"{DEPENDENCY_PLUGIN}:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={libs}",
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0 or not any(libs.glob("kafka_2.13-*.jar")):
        raise StackError(
            f"kafka: downloading the broker's jars failed:\n"
            f"{(result.stdout + result.stderr)[-3000:]}"
        )
    marker.touch()
    return libs


def _paths(profile: Profile) -> dict[str, Path]:
    root = profile.data_dir / "kafka"
    return {
        "root": root,
        "data": root / "data",
        "logs": root / "logs",
        "config": root / "server.properties",
        "log4j": root / "log4j2.properties",
        "pid": root / "kafka.pid",
        "out": root / "kafka.out",
    }


def _write_config(profile: Profile, paths: dict[str, Path]) -> None:
    config = f"""\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{profile.kafka_controller_port}
listeners=PLAINTEXT://127.0.0.1:{profile.kafka_port},CONTROLLER://127.0.0.1:{profile.kafka_controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{profile.kafka_port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs={paths["data"]}
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.hours=168
"""
    paths["config"].write_text(config)
    paths["log4j"].write_text(f"""\
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = {paths["logs"]}/server.log
appender.file.filePattern = {paths["logs"]}/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
""")


def _java(libs: Path, paths: dict[str, Path], *args: str) -> list[str]:
    return [
        "java",
        f"-Xms{HEAP}",
        f"-Xmx{HEAP}",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={paths['log4j']}",
        f"-Dkafka.logs.dir={paths['logs']}",
        "-cp",
        f"{libs}/*",
        *args,
    ]


def metadata_ok(bootstrap: str) -> bool:
    """True when the broker answers a metadata request."""
    # Imported here: the stack's other commands must work before Django is importable.
    from votes.broker import cluster_answers

    return cluster_answers(2.0, [bootstrap])


def pid(profile: Profile) -> int | None:
    """The broker's process id while it runs."""
    return read_pid(_paths(profile)["pid"])


def is_running(profile: Profile) -> bool:
    return pid(profile) is not None


def _cluster_id() -> str:
    """A random cluster id. Like Kafka's own, never one that starts with "-": the storage
    tool would read it as an option (one id in 64 did, and the start failed)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def start(profile: Profile) -> bool:
    if is_running(profile):
        return False
    ensure_port_free(profile.kafka_port, "kafka")
    ensure_port_free(profile.kafka_controller_port, "kafka controller")
    libs = libs_dir()
    paths = _paths(profile)
    for key in ("data", "logs"):
        paths[key].mkdir(parents=True, exist_ok=True)
    _write_config(profile, paths)
    if not (paths["data"] / "meta.properties").exists():
        cluster_id = _cluster_id()
        result = subprocess.run(
            _java(
                libs,
                paths,
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(paths["config"]),
            ),
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise StackError(f"kafka: formatting storage failed:\n{result.stdout}{result.stderr}")
    pid = spawn(_java(libs, paths, "kafka.Kafka", str(paths["config"])), paths["out"], paths["pid"])
    wait_until(
        lambda: metadata_ok(profile.kafka_bootstrap),
        lambda: read_pid(paths["pid"]) == pid,
        90,
        "kafka",
        paths["logs"] / "server.log",
    )
    return True


def stop(profile: Profile) -> bool:
    return terminate(_paths(profile)["pid"], "kafka", timeout=30)
