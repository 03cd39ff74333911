"""Prometheus metrics of the web process: the HTTP series and `/api/metrics`.

Several uvicorn workers on one host share their series through files in
PROMETHEUS_MULTIPROC_DIR (prometheus-client's multiprocess mode), which must be set,
and empty, before the workers start (deploy/entrypoint.sh does both); `/api/metrics` then
answers for all the host's live workers, whichever worker serves the scrape. Without it
each process reports its own series.

Each app defines its own series next to the code that moves them (votes/metrics.py,
realtime/metrics.py, accounts/throttle.py; the consumer's in votes/consumer_metrics.py,
served on its own port).

Who may scrape: `/api/metrics` is for the internal network. With METRICS_TOKEN set, a
request must carry `Authorization: Bearer <token>`; without it, only peers in
METRICS_ALLOWED_NETWORKS (loopback and private ranges by default) whose request came
through no proxy (no X-Forwarded-For or Forwarded header: a request relayed by the
public proxy is refused even though the proxy's own address is private). Others get 404.
"""

from __future__ import annotations

import atexit
import ipaddress
import os
import re
import secrets
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
if MULTIPROCESS:
    # A worker that exits stops counting in the live gauges (open streams, subscriptions).
    atexit.register(multiprocess.mark_process_dead, os.getpid())

HTTP_REQUESTS = Counter(
    "feedapp_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "feedapp_http_request_duration_seconds",
    "Time from a request's arrival to its response's start (for a stream: its headers), "
    "by method and route template.",
    ["method", "route"],
    buckets=(0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
THROTTLE_REFUSALS = Counter(
    "feedapp_throttle_refusals",
    "Requests refused by a limit (429), by limit: a throttle's scope "
    "(accounts/throttle.py) or a stream limit (streams:process, streams:user).",
    ["limit"],
)
# Anything else a client sends as a method is counted as "other": labels stay bounded.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"

# (method, route, status) -> the two series' children: one dict lookup per request instead
# of two `labels()` calls (each validates, builds a key and takes a lock).
_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count one answered request and its time to the response's start."""
    key = (method, route, status)
    children = _children.get(key)
    if children is None:
        children = _children[key] = (
            HTTP_REQUESTS.labels(method, route, str(status)),
            HTTP_DURATION.labels(method, route),
        )
    children[0].inc()
    children[1].observe(seconds)


# prometheus-client's file of one process's "live" gauges (livesum, liveall, ...).
_LIVE_GAUGES_FILE = re.compile(r"gauge_live[a-z]+_(\d+)\.db")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def forget_dead_workers(directory: str) -> list[int]:
    """Drop the live gauges of workers that died without exiting (SIGKILL, the OOM killer):
    their atexit hook never ran, so their open streams would be summed forever. The pids
    dropped, for the caller's log."""
    dead = set()
    for name in os.listdir(directory):
        match = _LIVE_GAUGES_FILE.fullmatch(name)
        if match and not _running(int(match[1])):
            dead.add(int(match[1]))
    for pid in dead:
        multiprocess.mark_process_dead(pid, directory)
    return sorted(dead)


def exposition() -> bytes:
    """Every series of this process, or of all the host's workers in multiprocess mode."""
    if not MULTIPROCESS:
        return generate_latest(REGISTRY)
    forget_dead_workers(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry)


def may_scrape(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        offered = request.headers.get("Authorization", "")
        return secrets.compare_digest(offered.encode(), f"Bearer {token}".encode())
    if "X-Forwarded-For" in request.headers or "Forwarded" in request.headers:
        return False
    try:
        peer = ipaddress.ip_address(request.META.get("REMOTE_ADDR") or "")
    except ValueError:
        return False
    return any(peer in network for network in settings.METRICS_ALLOWED_NETWORKS)


async def metrics_view(request: HttpRequest) -> HttpResponse:
    """`GET /api/metrics`: the Prometheus text format, for allowed scrapers only."""
    if not may_scrape(request):
        return JsonResponse({"detail": "Not Found"}, status=404)
    # Reading the workers' files is disk I/O: off the event loop.
    body = await sync_to_async(exposition, thread_sensitive=False)()
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
