"""Metrics, request ids and request logs: in process, then on real servers and a real
consumer with a vote flowing through Kafka."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from channels.testing import WebsocketCommunicator
from django.test import override_settings
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.parser import text_string_to_metric_families

from accounts.auth import COOKIE_NAME
from accounts.tokens import issue_token
from feedapp.asgi import application
from feedapp.metrics import forget_dead_workers
from feedapp.requestlog import JsonFormatter, RequestIdFilter
from stack.profiles import PROJECT_ROOT
from tests.accounts_client import AddressedClient
from tests.consumers import start_consumer_process, stop_consumer_process
from tests.polls import db_counts, make_poll
from tests.servers import Server, free_port, start_server
from tests.sse_client import LiveStream
from tests.users import make_user
from tests.waiting import eventually
from votes import broker


def value(text: str, name: str, **labels: str) -> float:
    """The sample `name` with exactly these labels (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


# --- in process -----------------------------------------------------------------------------


async def test_metrics_are_served_to_the_internal_network_only() -> None:
    inside = AddressedClient("10.1.2.3")
    response = await inside.get("/api/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert b"# TYPE feedapp_http_requests_total counter" in response.content

    assert (await AddressedClient("203.0.113.9").get("/api/metrics")).status_code == 404
    # Relayed by a proxy (whose own address is private): refused all the same.
    relayed = await inside.get("/api/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert relayed.status_code == 404

    with override_settings(METRICS_TOKEN="s3cret-token"):
        assert (await inside.get("/api/metrics")).status_code == 404
        wrong = await inside.get("/api/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 404
        outside = AddressedClient("203.0.113.9")
        right = await outside.get("/api/metrics", headers={"Authorization": "Bearer s3cret-token"})
        assert right.status_code == 200


async def test_requests_are_counted_by_route_template() -> None:
    client = AddressedClient("10.9.9.9")
    before = (await client.get("/api/metrics")).content.decode()
    labels = {"method": "GET", "route": "/api/poll/<poll_id>", "status": "404"}
    for poll_id in (999_999_991, 999_999_992):  # two paths, one route
        assert (await client.get(f"/api/poll/{poll_id}")).status_code == 404
    assert (await client.get("/api/no/such/route")).status_code == 404
    after = (await client.get("/api/metrics")).content.decode()
    name = "feedapp_http_requests_total"
    assert value(after, name, **labels) - value(before, name, **labels) == 2
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    assert value(after, name, **unmatched) - value(before, name, **unmatched) == 1
    histogram = "feedapp_http_request_duration_seconds_count"
    route = {"method": "GET", "route": "/api/poll/<poll_id>"}
    assert value(after, histogram, **route) - value(before, histogram, **route) == 2


@pytest.fixture
def request_records(caplog) -> Iterator[pytest.LogCaptureFixture]:
    """Captured records with the request id the console handler would give them."""
    caplog.handler.addFilter(RequestIdFilter())
    caplog.set_level(logging.INFO)
    yield caplog
    caplog.handler.removeFilter(caplog.handler.filters[-1])


async def test_a_request_id_is_taken_or_made_returned_and_on_every_line(request_records) -> None:
    client = AddressedClient()
    body = {"username": f"nobody_{uuid.uuid4().hex[:8]}", "password": "wrong-password"}
    response = await client.post_json(
        "/api/user/login", body, headers={"X-Request-ID": "req-42.abc_DEF"}
    )
    assert response.status_code == 401
    assert response["X-Request-ID"] == "req-42.abc_DEF"
    lines = [r for r in request_records.records if getattr(r, "request_id", "-") != "-"]
    # The service's own warning and the request line, both with the request's id.
    assert {r.name for r in lines} >= {"accounts.services", "feedapp.request"}
    assert {r.request_id for r in lines} == {"req-42.abc_DEF"}
    request_line = next(r for r in lines if r.name == "feedapp.request")
    assert request_line.http["route"] == "/api/user/login"
    assert request_line.http["status"] == 401

    for offered in ("has space", "x" * 65, "new\nline"):
        response = await client.get("/api/health", headers={"X-Request-ID": offered})
        made = response["X-Request-ID"]
        assert made != offered
        assert re.fullmatch(r"[0-9a-f]{32}", made)
    assert re.fullmatch(r"[0-9a-f]{32}", (await client.get("/api/health"))["X-Request-ID"])


async def test_a_websocket_has_a_request_id_and_a_line_when_it_ends(request_records) -> None:
    poll = await make_poll(await make_user())
    ws = WebsocketCommunicator(
        application, f"/ws/poll/{poll.id}", headers=[(b"x-request-id", b"ws-7")]
    )
    await ws.send_input({"type": "websocket.connect"})
    accept = await ws.receive_output(timeout=10)
    assert accept["type"] == "websocket.accept"
    assert (b"x-request-id", b"ws-7") in accept["headers"]
    assert json.loads((await ws.receive_output(timeout=10))["text"])["event"] == "vote_update"
    await ws.disconnect(code=1000)

    refused = WebsocketCommunicator(application, f"/ws/poll/{poll.id + 10**9}")
    connected, _ = await refused.connect()
    assert connected
    assert await refused.receive_output(timeout=10) == {"type": "websocket.close", "code": 4404}
    await refused.wait()

    lines = [r for r in request_records.records if getattr(r, "ws", None)]
    closed = next(r for r in lines if r.ws["outcome"] == "closed")
    assert (closed.request_id, closed.ws["code"], closed.ws["route"]) == (
        "ws-7",
        1000,
        "/ws/poll/<poll_id>",
    )
    made = next(r for r in lines if r.ws["outcome"] == "refused")
    assert made.ws["code"] == 4404 and re.fullmatch(r"[0-9a-f]{32}", made.request_id)
    assert len(lines) == 2  # a refused connection is not logged again when it ends


async def test_user_input_in_a_request_line_is_escaped(request_records) -> None:
    client = AddressedClient()
    await client.get("/api/poll/1%0AFORGED%20line")
    record = next(r for r in request_records.records if r.name == "feedapp.request")
    plain = logging.Formatter("%(message)s").format(record)
    assert "\n" not in plain
    assert "FORGED" in plain
    as_json = JsonFormatter().format(record)
    assert "\n" not in as_json
    assert json.loads(as_json)["http"]["path"] == "/api/poll/1\nFORGED line"


def test_json_lines_carry_the_fields_and_exceptions() -> None:
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "oops %s", ("\x1b[31m",), None)
        record.exc_info = sys.exc_info()
    record.request_id = "abc"
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["message"] == "oops \x1b[31m"
    assert parsed["request_id"] == "abc"
    assert parsed["level"] == "ERROR"
    assert "ValueError: bad" in parsed["exception"]


# --- real servers and a real consumer ---------------------------------------------------------


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (loopback)
        return response.read().decode()


def post_vote(server: Server, user, poll_id: int, option_id: int) -> int:
    request = urllib.request.Request(  # noqa: S310 (loopback)
        f"{server.url}/api/vote/submit",
        data=json.dumps({"poll_id": poll_id, "vote_option_id": option_id}).encode(),
        headers={
            "Content-Type": "application/json",
            "Cookie": f"{COOKIE_NAME}={issue_token(user.id)}",
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@pytest.fixture
def vote_path(tmp_path) -> Iterator[tuple[Server, subprocess.Popen[bytes], int, Path]]:
    """uvicorn (two workers, JSON logs) and a consumer process with its metrics port, on a
    topic of their own."""
    topic = f"test-metrics-{uuid.uuid4().hex[:8]}"
    broker.ensure_topic(topic, 2, 1)
    (tmp_path / "multiproc").mkdir()
    server = start_server(
        "uvicorn",
        tmp_path / "web.log",
        workers=2,
        env={
            "KAFKA_VOTE_TOPIC": topic,
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "multiproc"),
            "LOG_FORMAT": "json",
            "VOTE_RATE_BURST": "2",
            "VOTE_RATE_PER_SECOND": "1",
        },
    )
    port = free_port()
    consumer = start_consumer_process(
        topic,
        f"metrics-{uuid.uuid4().hex[:8]}",
        tmp_path / "consumer.log",
        env={"CONSUMER_METRICS_PORT": str(port)},
    )
    try:
        yield server, consumer, port, tmp_path
    finally:
        server.stop()
        stop_consumer_process(consumer)
        broker.delete_topic(topic)


async def test_the_series_move_when_a_vote_flows_through(vote_path) -> None:
    server, _consumer, port, logs = vote_path
    web_metrics = f"{server.url}/api/metrics"
    consumer_metrics = f"http://127.0.0.1:{port}/metrics"
    assert await eventually(lambda: _answers(consumer_metrics), True)
    # Votes sent before the consumer joined its group would wait for it: start once it has.
    assert await eventually(lambda: _assigned(logs / "consumer.log"), True, within=90)
    owner, voter = await make_user(), await make_user()
    poll = await make_poll(owner)
    web_before, consumer_before = scrape(web_metrics), scrape(consumer_metrics)

    stream = await LiveStream(f"{server.url}/api/vote/stream/{poll.id}", {}).open()
    assert stream.status == 200
    try:
        web_open = scrape(web_metrics)
        assert value(web_open, "feedapp_streams_open") >= 1
        assert await eventually(lambda: _hub_subscribed(web_metrics), True)
        statuses = [post_vote(server, voter, poll.id, option) for option in poll.option_ids]
        assert statuses == [201, 201, 429]  # a burst of 2, then the vote rate's refusal
        a, b, c = poll.option_ids
        assert await eventually(lambda: db_counts(poll.id), {a: 0, b: 1, c: 0}, 60) == {
            a: 0,
            b: 1,
            c: 0,
        }
    finally:
        await stream.close()

    web_after = scrape(web_metrics)
    produced = "feedapp_vote_produce_duration_seconds_count"
    assert value(web_after, produced) - value(web_before, produced) == 2
    assert value(web_after, "feedapp_vote_produce_failures_total") == value(
        web_before, "feedapp_vote_produce_failures_total"
    )
    submits = {"method": "POST", "route": "/api/vote/submit", "status": "201"}
    assert (
        value(web_after, "feedapp_http_requests_total", **submits)
        - value(web_before, "feedapp_http_requests_total", **submits)
        == 2
    )
    refusals = {"limit": "votes:user"}
    assert (
        value(web_after, "feedapp_throttle_refusals_total", **refusals)
        - value(web_before, "feedapp_throttle_refusals_total", **refusals)
        == 1
    )

    consumer_after = await _consumer_caught_up(consumer_metrics, consumer_before)
    applied = "feedapp_consumer_votes_applied_total"
    # Two votes of one user: 1 when one batch held both (reduced to the last), else 2.
    assert value(consumer_after, applied) - value(consumer_before, applied) in (1, 2)
    assert value(consumer_after, "feedapp_consumer_batches_total") > value(
        consumer_before, "feedapp_consumer_batches_total"
    )
    assert value(consumer_after, "feedapp_consumer_seconds_since_last_commit") < 30
    assert value(consumer_after, "feedapp_consumer_seconds_since_last_poll") < 30
    # The lag is recorded at most once a second, also while idle: it settles at 0.
    assert await eventually(lambda: _lag_settled(consumer_metrics), True)
    # The container's liveness probe reads the same series.
    probe = await asyncio.create_subprocess_exec(
        sys.executable,
        str(PROJECT_ROOT / "deploy" / "probe.py"),
        "consumer",
        env={"CONSUMER_METRICS_PORT": str(port)},
    )
    assert await asyncio.wait_for(probe.wait(), 30) == 0

    # JSON logs: one object per line; the request line of each vote with its own id.
    text = (logs / "web.log").read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    votes = [line for line in lines if line.get("http", {}).get("route") == "/api/vote/submit"]
    assert [line["http"]["status"] for line in votes] == [201, 201, 429]
    assert len({line["request_id"] for line in votes}) == 3
    # uvicorn's own lines in each worker are JSON too (only its supervisor's are not).
    started = [line for line in lines if line.get("logger") == "uvicorn.error"]
    assert sum("Started server process" in line["message"] for line in started) == 2
    assert not any(
        "Started server process" in line for line in text.splitlines() if not line.startswith("{")
    )


async def _answers(url: str) -> bool:
    try:
        scrape(url)
        return True
    except OSError:
        return False


async def _assigned(log: Path) -> bool:
    return "partitions assigned: [" in await asyncio.to_thread(log.read_text, errors="replace")


async def _hub_subscribed(url: str) -> bool:
    return value(scrape(url), "feedapp_hub_subscriptions") >= 1


async def _lag_settled(url: str) -> bool:
    lags = [
        s
        for f in text_string_to_metric_families(scrape(url))
        for s in f.samples
        if s.name == "feedapp_consumer_lag_records"
    ]
    return bool(lags) and all(s.value == 0 for s in lags)


async def _consumer_caught_up(url: str, before: str) -> str:
    """The consumer's metrics once they show the batch with both votes' records."""
    records = "feedapp_consumer_batches_total"

    async def moved() -> bool:
        return value(scrape(url), records) > value(before, records)

    assert await eventually(moved, True)
    return scrape(url)


def test_the_dashboard_queries_only_series_that_exist() -> None:
    from prometheus_client import REGISTRY, generate_latest

    import feedapp.urls  # noqa: F401  (every web series, defined on import)
    import votes.consumer_metrics  # noqa: F401  (the consumer's series)

    exposed = generate_latest(REGISTRY).decode()
    dashboard = json.loads((PROJECT_ROOT / "docs" / "grafana-dashboard.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"feedapp_\w+", target["expr"])
    }
    assert len(queried) >= 12
    for name in queried:
        family = re.sub(r"_(bucket|count|sum|total)$", "", name)
        typed = rf"^# TYPE ({family}|{name}) "
        assert re.search(typed, exposed, re.MULTILINE), f"{name} is not a series"


_SETS_A_LIVE_GAUGE = """
import os, signal, sys, time
from prometheus_client import Gauge
Gauge("test_streams_open", "open streams", multiprocess_mode="livesum").set(int(sys.argv[1]))
print("set", flush=True)
if sys.argv[2] == "killed":
    os.kill(os.getpid(), signal.SIGKILL)
time.sleep(60)
"""


def _streams_open(directory: Path) -> float:
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, str(directory))
    return value(generate_latest(registry).decode(), "test_streams_open")


def test_a_killed_workers_open_streams_stop_counting(tmp_path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    command = [sys.executable, "-c", _SETS_A_LIVE_GAUGE]
    # One worker SIGKILLed with 5 streams open (no atexit), one alive with 2.
    subprocess.run([*command, "5", "killed"], env=env, timeout=60)
    alive = subprocess.Popen([*command, "2", "alive"], env=env, stdout=subprocess.PIPE)
    try:
        assert alive.stdout is not None and alive.stdout.readline() == b"set\n"
        assert _streams_open(tmp_path) == 7  # what a scrape said before
        dead = forget_dead_workers(str(tmp_path))
        assert len(dead) == 1 and alive.pid not in dead
        assert _streams_open(tmp_path) == 2
    finally:
        alive.kill()
        alive.wait()
