#!/bin/sh
# The image's commands (Dockerfile ENTRYPOINT):
#   web        the ASGI app under uvicorn: WEB_WORKERS processes (default: one per core)
#   consumer   `manage.py consume_votes`; extra arguments are passed on
#   migrate    `manage.py dbmate up` (waits for PostgreSQL), then exits
#   anything else runs as given (e.g. `python manage.py createsuperuser`)
set -eu

command="${1:-web}"
[ "$#" -gt 0 ] && shift

case "$command" in
web)
    # The workers share their metrics through files here (prometheus-client's multiprocess
    # mode, feedapp/metrics.py); files of an earlier run would be counted again: start empty.
    export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-/tmp/feedapp-metrics}"
    rm -rf "$PROMETHEUS_MULTIPROC_DIR"
    mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
    # Leave X-Forwarded-For to the app (TRUSTED_PROXY_HOPS): uvicorn would rewrite the
    # peer address itself. Keep idle upstream connections open longer than the proxy keeps
    # them (nginx: 60 s), or the proxy may reuse one the server is closing (a 502).
    # SlowClientGuard: httptools that closes slow requests (HTTP_*_TIMEOUT_SECONDS).
    exec uvicorn feedapp.asgi:application \
        --host "${WEB_HOST:-0.0.0.0}" --port "${WEB_PORT:-8000}" \
        --workers "${WEB_WORKERS:-$(nproc)}" \
        --loop uvloop --http feedapp.server:SlowClientGuard --ws websockets \
        --no-proxy-headers --no-access-log \
        --timeout-keep-alive 75 --timeout-graceful-shutdown 30 \
        "$@"
    ;;
consumer)
    # Metrics on CONSUMER_METRICS_PORT (when set), reachable from other containers.
    export CONSUMER_METRICS_ADDRESS="${CONSUMER_METRICS_ADDRESS:-0.0.0.0}"
    # One consumer per container: its hostname names it for as long as the container
    # lives, so a restarted consumer takes its partitions back at once (static membership).
    export KAFKA_CONSUMER_INSTANCE_ID="${KAFKA_CONSUMER_INSTANCE_ID:-$(hostname)}"
    exec python manage.py consume_votes "$@"
    ;;
migrate)
    exec python manage.py dbmate up "$@"
    ;;
*)
    exec "$command" "$@"
    ;;
esac
