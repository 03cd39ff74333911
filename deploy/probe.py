"""Container health checks (compose.yaml's `healthcheck`s); the exit status says healthy (0).

    python deploy/probe.py web        this container's web server answers GET /api/ready
                                      with 200 (PostgreSQL, Valkey, Kafka and the producer
                                      are usable from it)
    python deploy/probe.py consumer   this container's vote consumer serves its metrics
                                      (CONSUMER_METRICS_PORT) and its poll loop went round
                                      within the last CONSUMER_STALL_SECONDS (default 60)

Standard library only: it runs every few seconds and must start fast.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

LOOP_GAUGE = "feedapp_consumer_seconds_since_last_poll"


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=4) as response:  # noqa: S310 (loopback URL)
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def web() -> str | None:
    """None when ready, else why not."""
    port = os.environ.get("WEB_PORT", "8000")
    status, _ = _get(f"http://127.0.0.1:{port}/api/ready")
    return None if status == 200 else f"/api/ready answered {status}"


def consumer() -> str | None:
    """None when the consumer's loop is alive, else why not."""
    port = os.environ.get("CONSUMER_METRICS_PORT", "9100")
    limit = float(os.environ.get("CONSUMER_STALL_SECONDS", "60"))
    status, text = _get(f"http://127.0.0.1:{port}/metrics")
    if status != 200:
        return f"metrics answered {status}"
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == LOOP_GAUGE:
            seconds = float(value)
            return None if seconds <= limit else f"poll loop stalled for {seconds:.0f} s"
    return f"{LOOP_GAUGE} missing from the metrics"


def main(argv: list[str]) -> int:
    checks = {"web": web, "consumer": consumer}
    if len(argv) != 2 or argv[1] not in checks:
        print(f"usage: probe.py {'|'.join(checks)}", file=sys.stderr)
        return 2
    try:
        problem = checks[argv[1]]()
    except OSError as exc:
        problem = f"unreachable: {exc}"
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
