# syntax=docker/dockerfile:1
# FeedApp: ONE image runs the web server, the vote consumer or the migration job, chosen
# by its command (deploy/entrypoint.sh: `web` (default), `consumer`, `migrate`).
#
#   docker build -t feedapp .                        the application image (last stage)
#   docker build --target proxy -t feedapp-proxy .   nginx with deploy/nginx.conf and the
#                                                    admin's static files
# compose.yaml builds both.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG NGINX_IMAGE=nginx:1.28-alpine
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13

FROM ${UV_IMAGE} AS uv

# --- build: the locked virtual environment, the app's bytecode and static files ----------
FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app
# The dependencies alone first: this layer is rebuilt only when uv.lock changes. Every
# dependency ships as a wheel, so no compiler is needed here either.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project
COPY . .
# Bytecode that is valid whatever the files' times become (the runtime user cannot write
# it), then the admin's static files for the proxy stage. collectstatic only reads the
# settings; the addresses and keys it is given here are placeholders used by nothing.
RUN uv sync --frozen --no-dev \
    && .venv/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash \
        -x '/\.venv/' /app \
    && DJANGO_SECRET_KEY=collectstatic-only JWT_SECRET_KEY=collectstatic-only \
        DATABASE_URL=postgres://unused@localhost/unused VALKEY_URL=valkey://localhost \
        KAFKA_BOOTSTRAP_SERVERS=localhost:9092 FEEDAPP_ALLOWED_ORIGINS=https://unused \
        FEEDAPP_MODE=production STATIC_ROOT=/app/static \
        .venv/bin/python manage.py collectstatic --noinput --verbosity 0

# --- proxy: the reverse proxy in front of the web replicas -------------------------------
FROM ${NGINX_IMAGE} AS proxy
COPY deploy/nginx.conf /etc/nginx/nginx.conf
COPY --from=build /app/static /srv/feedapp/static

# --- runtime (the default target): the app, no build tools, a non-root user --------------
FROM ${PYTHON_IMAGE} AS runtime
# uid/gid 10001: outside the range of any user a host or base image usually has.
RUN groupadd --system --gid 10001 feedapp \
    && useradd --system --uid 10001 --gid feedapp --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin feedapp
# Owned by root and read-only for the app: code cannot be changed by the process running it.
COPY --from=build /app /app
WORKDIR /app
ENV PATH="/app/.venv/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=feedapp.settings \
    FEEDAPP_MODE=production \
    STATIC_ROOT=/app/static
USER 10001:10001
# 8000: HTTP (web); 9100: the consumer's metrics (CONSUMER_METRICS_PORT).
EXPOSE 8000 9100
ENTRYPOINT ["/app/deploy/entrypoint.sh"]
CMD ["web"]
