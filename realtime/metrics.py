"""Prometheus series of the live streams (see feedapp/metrics.py for how they are served).

Gauges are set where the numbers change: with several workers on a host, the series of
the live workers are summed ("livesum") when scraped.
"""

from __future__ import annotations

from prometheus_client import Gauge

STREAMS_OPEN = Gauge(
    "feedapp_streams_open",
    "Live streams (SSE and WebSocket) the process serves now.",
    multiprocess_mode="livesum",
)
HUB_SUBSCRIPTIONS = Gauge(
    "feedapp_hub_subscriptions",
    "Polls the process's hub is subscribed to in Valkey (polls with a local viewer).",
    multiprocess_mode="livesum",
)
