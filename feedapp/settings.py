"""FeedApp settings, read from the environment and an optional `.env` (see `.env.example`).

Defaults point at the local development stack (`python -m stack start`). In production
(`FEEDAPP_MODE=production`) every secret must come from the environment.
"""

from __future__ import annotations

import ipaddress
import secrets
import sys
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(env("FEEDAPP_ENV_FILE", default=str(BASE_DIR / ".env")))

MODE = env.str("FEEDAPP_MODE", default="development")
if MODE not in ("development", "production"):
    raise environ.ImproperlyConfigured("FEEDAPP_MODE must be 'development' or 'production'")
PRODUCTION = MODE == "production"
DEBUG = env.bool("DJANGO_DEBUG", default=not PRODUCTION)


def _local_secret(name: str) -> str:
    """A random secret kept in the git-ignored `.stack/` folder, for development only."""
    path = BASE_DIR / ".stack" / f"{name}.secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def _service_url(name: str, local_default: str) -> str:
    """A backing service's address: from the environment, else (development only) the
    local stack's, for the profile and port offset `python -m stack` uses."""
    value = env.str(name, default="")
    if value:
        return value
    if PRODUCTION:
        raise environ.ImproperlyConfigured(f"{name} must be set when FEEDAPP_MODE=production")
    from stack.profiles import get_profile  # the local stack exists only in development

    return str(getattr(get_profile(), local_default))


def _secret(name: str) -> str:
    value = env.str(name, default="")
    if value:
        return value
    if PRODUCTION:
        raise environ.ImproperlyConfigured(f"{name} must be set when FEEDAPP_MODE=production")
    return _local_secret(name.lower())


SECRET_KEY = _secret("DJANGO_SECRET_KEY")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

# daphne's app gives `runserver` (make dev) its ASGI server. Only there: importing it
# installs Twisted's reactor, 0.3 s of every other process's start-up (the consumer's,
# a uvicorn worker's, each management command's).
RUNSERVER = sys.argv[1:2] == ["runserver"]

INSTALLED_APPS = [
    *(["daphne"] if RUNSERVER else []),  # first: its `runserver` replaces Django's
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "db",
    "accounts",
    "polls",
    "moderation",
    "votes.apps.VotesConfig",
    "realtime.apps.RealtimeConfig",
    "demo.apps.DemoConfig",
]

# Every entry is async-native; Django's own middleware (thread hops under ASGI) runs
# only outside /api/, for the admin (see feedapp.middleware.outside_api).
MIDDLEWARE = [
    # Outermost: the request id, the request's log line and its metrics cover every answer.
    "feedapp.requestlog.request_log_middleware",
    "feedapp.middleware.standard_headers_middleware",
    # Inside the headers (which set Content-Length), around everything that may fail.
    "feedapp.middleware.json_errors_middleware",
    # Before anything reads the body.
    "feedapp.middleware.body_limit_middleware",
    # The API's CSRF defence (Origin check); Django's token check below keeps guarding /admin/.
    "accounts.middleware.origin_check_middleware",
    "accounts.middleware.session_renewal_middleware",
    "feedapp.middleware.session_middleware",
    "feedapp.middleware.common_middleware",
    "feedapp.middleware.csrf_middleware",
    "feedapp.middleware.authentication_middleware",
    "feedapp.middleware.message_middleware",
]

# The admin looks for Django's session, auth and messages middleware by class path; they
# are present, wrapped by feedapp.middleware.outside_api, which the check cannot see.
SILENCED_SYSTEM_CHECKS = ["admin.E408", "admin.E409", "admin.E410"]

ROOT_URLCONF = "feedapp.urls"
ASGI_APPLICATION = "feedapp.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Sessions -----------------------------------------------------------------------------
JWT_SECRET_KEY = _secret("JWT_SECRET_KEY")
JWT_TTL_SECONDS = env.int("JWT_TTL_SECONDS", default=3600)
# However often a session is renewed, it ends this long after its sign-in (30 days).
SESSION_MAX_AGE_SECONDS = env.int("SESSION_MAX_AGE_SECONDS", default=30 * 24 * 3600)
# How stale the per-process view of a user may be: a ban applies within this delay.
AUTH_USER_CACHE_SECONDS = env.float("AUTH_USER_CACHE_SECONDS", default=5.0)
# The session cookie travels over HTTPS only; off in development so http://localhost works.
AUTH_COOKIE_SECURE = env.bool("AUTH_COOKIE_SECURE", default=not DEBUG)
# Origins whose browsers may send state-changing API requests (the Origin/Referer check).
# Development allows the local frontend dev servers: the FeedApp frontend's own (`vite
# --port 3000`), Vite's default port 5173, and this API's docs page on :8000. Production
# has no default: a deployment names its own origins.
_DEVELOPMENT_ORIGINS = [
    f"http://{host}:{port}" for port in (3000, 5173, 8000) for host in ("localhost", "127.0.0.1")
]
if PRODUCTION and "FEEDAPP_ALLOWED_ORIGINS" not in env:
    raise environ.ImproperlyConfigured(
        "FEEDAPP_ALLOWED_ORIGINS must be set when FEEDAPP_MODE=production"
    )
FEEDAPP_ALLOWED_ORIGINS = env.list("FEEDAPP_ALLOWED_ORIGINS", default=_DEVELOPMENT_ORIGINS)
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    # Verifies hashes made by other hashers; they are replaced by Argon2id on the next login.
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
# Asked again by `createsuperuser` at its prompt; accounts.models applies all of the
# API's rules (8 to 128 characters) to every account it creates.
AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 8},
    },
]

# --- Admin --------------------------------------------------------------------------------
# The admin signs staff in with their FeedApp account: the "user" table (accounts.models)
# and the API's own login check (accounts.backends).
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = ["accounts.backends.AccountBackend"]
# Admin sign-ins live in django_session (the API's sessions are signed tokens).
SESSION_COOKIE_AGE = env.int("ADMIN_SESSION_SECONDS", default=8 * 3600)
SESSION_COOKIE_SECURE = AUTH_COOKIE_SECURE
CSRF_COOKIE_SECURE = AUTH_COOKIE_SECURE
# Origins the admin's forms are posted from, when a TLS-terminating proxy makes the
# request's own scheme and host differ from what the browser sends as Origin.
CSRF_TRUSTED_ORIGINS = env.list("ADMIN_TRUSTED_ORIGINS", default=[])

# --- Limits -------------------------------------------------------------------------------
# Failed logins allowed per window: per account from one client address (the limit a
# user meets), per account from all addresses and per address for all accounts (high
# enough that no attacker can lock the owner out from elsewhere). accounts.services.
LOGIN_FAILURES_LIMIT = env.int("LOGIN_FAILURES_LIMIT", default=10)
LOGIN_ACCOUNT_FAILURES_LIMIT = env.int("LOGIN_ACCOUNT_FAILURES_LIMIT", default=100)
LOGIN_ADDRESS_FAILURES_LIMIT = env.int("LOGIN_ADDRESS_FAILURES_LIMIT", default=100)
LOGIN_FAILURES_WINDOW_SECONDS = env.float("LOGIN_FAILURES_WINDOW_SECONDS", default=300.0)
# Registrations allowed per window and client address.
REGISTRATIONS_LIMIT = env.int("REGISTRATIONS_LIMIT", default=30)
REGISTRATIONS_WINDOW_SECONDS = env.float("REGISTRATIONS_WINDOW_SECONDS", default=600.0)
# Vote submissions per second and user, and the burst allowed above that rate.
VOTE_RATE_PER_SECOND = env.int("VOTE_RATE_PER_SECOND", default=10)
VOTE_RATE_BURST = env.int("VOTE_RATE_BURST", default=20)
# How far ahead a poll's expires_at may be, days (422 past it).
POLL_EXPIRY_MAX_DAYS = env.int("POLL_EXPIRY_MAX_DAYS", default=3650)
# Reports of polls per user and hour (POST /api/poll/{id}/report); past it 429.
REPORTS_PER_HOUR = env.int("REPORTS_PER_HOUR", default=20)
# A poll reported by this many distinct users (open reports) leaves the public feed and
# anonymous view until a moderator dismisses the reports. 0: never hidden automatically.
REPORTS_AUTOHIDE_THRESHOLD = env.int("REPORTS_AUTOHIDE_THRESHOLD", default=0)
# Reverse proxies in front of the app that append to X-Forwarded-For; 0 trusts no header.
TRUSTED_PROXY_HOPS = env.int("TRUSTED_PROXY_HOPS", default=0)
# Largest request body accepted, bytes; larger ones get 413.
REQUEST_BODY_LIMIT_BYTES = env.int("REQUEST_BODY_LIMIT_BYTES", default=64 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_BODY_LIMIT_BYTES

# --- PostgreSQL -------------------------------------------------------------------------
# One URL for both the SQL layer's psycopg pool and Django's own connection (admin).
# Unset in development: the local stack of FEEDAPP_STACK_PROFILE (default dev), its ports
# shifted by FEEDAPP_STACK_PORT_OFFSET, as `python -m stack` starts it.
DATABASE_URL = _service_url("DATABASE_URL", "database_url")
DB_POOL_MIN_SIZE = env.int("DB_POOL_MIN_SIZE", default=2)
DB_POOL_MAX_SIZE = env.int("DB_POOL_MAX_SIZE", default=10)
DB_POOL_TIMEOUT_SECONDS = env.float("DB_POOL_TIMEOUT_SECONDS", default=5.0)
# Connections Django's own pool (the admin, management commands) keeps per process.
ADMIN_DB_POOL_MAX_SIZE = env.int("ADMIN_DB_POOL_MAX_SIZE", default=4)
DATABASES = {"default": env.db_url_config(DATABASE_URL)}
DATABASES["default"]["TEST"] = {"NAME": DATABASES["default"]["NAME"]}
# Django's connection comes from a pool and is checked before each use. Under ASGI every
# admin request runs on a thread of its own, so a persistent connection (CONN_MAX_AGE >
# 0) would never serve a second request and dead ones would pile up until collected;
# CONN_MAX_AGE stays 0 (the pool requires it) and each request returns its connection to
# the pool. CONN_HEALTH_CHECKS makes the pool test a connection when it hands it out, so
# after a PostgreSQL restart the first admin request gets a fresh one instead of a 500.
DATABASES["default"]["CONN_MAX_AGE"] = 0
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"]["OPTIONS"] = {
    **DATABASES["default"].get("OPTIONS", {}),
    # Names these connections in pg_stat_activity, apart from the SQL layer's.
    "application_name": "feedapp-admin",
    "pool": {
        "min_size": 0,
        "max_size": ADMIN_DB_POOL_MAX_SIZE,
        "timeout": DB_POOL_TIMEOUT_SECONDS,
        # Idle connections are closed after five minutes: the admin is used in bursts.
        "max_idle": 300,
    },
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# dbmate owns every table, Django's own included: Django's migrations never run, and
# `makemigrations` refuses to write any for the admin's unmanaged models.
MIGRATION_MODULES = {
    app: None
    for app in (
        "admin",
        "auth",
        "contenttypes",
        "sessions",
        "accounts",
        "polls",
        "moderation",
        "votes",
    )
}

# --- Valkey -----------------------------------------------------------------------------
VALKEY_URL = _service_url("VALKEY_URL", "valkey_url")
VALKEY_TIMEOUT_SECONDS = env.float("VALKEY_TIMEOUT_SECONDS", default=2.0)
# Cached counts of a poll nobody reads expire; the next read rebuilds them.
COUNTS_CACHE_TTL_SECONDS = env.int("COUNTS_CACHE_TTL_SECONDS", default=86400)

# --- Kafka ------------------------------------------------------------------------------
KAFKA_BOOTSTRAP_SERVERS = [
    server.strip()
    for server in _service_url("KAFKA_BOOTSTRAP_SERVERS", "kafka_bootstrap").split(",")
    if server.strip()
]
KAFKA_VOTE_TOPIC = env.str("KAFKA_VOTE_TOPIC", default="vote-event")
KAFKA_VOTE_TOPIC_PARTITIONS = env.int("KAFKA_VOTE_TOPIC_PARTITIONS", default=12)
KAFKA_VOTE_TOPIC_REPLICATION = env.int("KAFKA_VOTE_TOPIC_REPLICATION", default=1)
# The vote topic's min.insync.replicas when it is created with 3 replicas or more: a vote
# is acknowledged (acks=all) once this many replicas have it (votes.broker.topic_configs).
KAFKA_VOTE_TOPIC_MIN_INSYNC_REPLICAS = env.int("KAFKA_VOTE_TOPIC_MIN_INSYNC_REPLICAS", default=2)
# A vote is answered 503 when the broker has not acknowledged it within this time.
KAFKA_PRODUCE_TIMEOUT_SECONDS = env.float("KAFKA_PRODUCE_TIMEOUT_SECONDS", default=5.0)
KAFKA_CONSUMER_GROUP = env.str("KAFKA_CONSUMER_GROUP", default="feedapp-vote-consumer")
# Group membership of the consumers (docs/RELIABILITY.md): a consumer that stops sending
# heartbeats loses its partitions after the session timeout (at least the broker's
# group.min.session.timeout.ms, 6 s by default; 6 s lost members on a 2-core machine
# under heavy load, whose heartbeat thread was starved).
KAFKA_CONSUMER_SESSION_TIMEOUT_MS = env.int("KAFKA_CONSUMER_SESSION_TIMEOUT_MS", default=10000)
KAFKA_CONSUMER_HEARTBEAT_INTERVAL_MS = env.int("KAFKA_CONSUMER_HEARTBEAT_INTERVAL_MS", default=1000)
KAFKA_CONSUMER_MAX_POLL_INTERVAL_MS = env.int("KAFKA_CONSUMER_MAX_POLL_INTERVAL_MS", default=30000)
KAFKA_CONSUMER_ASSIGNMENT = env.str("KAFKA_CONSUMER_ASSIGNMENT", default="cooperative-sticky")
KAFKA_CONSUMER_INSTANCE_ID = env.str("KAFKA_CONSUMER_INSTANCE_ID", default="")
if KAFKA_CONSUMER_ASSIGNMENT not in ("cooperative-sticky", "range"):
    raise environ.ImproperlyConfigured("KAFKA_CONSUMER_ASSIGNMENT: cooperative-sticky or range")

# --- Live streams (SSE and WebSocket) ----------------------------------------------------
# Open streams one web process serves; past it new ones get 429.
SSE_MAX_STREAMS_PER_PROCESS = env.int("SSE_MAX_STREAMS_PER_PROCESS", default=10_000)
# Open streams per user (anonymous callers: per client address), across all processes.
SSE_MAX_STREAMS_PER_USER = env.int("SSE_MAX_STREAMS_PER_USER", default=5)
# A quiet stream gets a `: keepalive` comment this often, so proxies keep it open.
SSE_KEEPALIVE_SECONDS = env.float("SSE_KEEPALIVE_SECONDS", default=15.0)
# A stream asks again whether its viewer may still watch at least this often (and before
# an update once AUTH_USER_CACHE_SECONDS passed); a ban, a revoked grant, a logout or an
# expired token ends it with `access_revoked` (WebSocket: close code 4403).
STREAM_RECHECK_SECONDS = env.float("STREAM_RECHECK_SECONDS", default=15.0)

# --- Garbage collector of a web process (feedapp/collector.py says why) -------------------
# CPython's three thresholds: allocations between young collections, young collections per
# middle one, middle ones per full one. CPython's defaults are 700,10,10.
GC_THRESHOLDS = env.list("GC_THRESHOLDS", cast=int, default=[50_000, 20, 100])
if len(GC_THRESHOLDS) != 3 or min(GC_THRESHOLDS) < 1:
    raise environ.ImproperlyConfigured("GC_THRESHOLDS: three positive integers, e.g. 50000,20,100")

# --- Slow clients (feedapp.server.SlowClientGuard, the protocol production's uvicorn runs)
# A connection whose request headers have not all arrived this long after it was made (or
# after its next request began) is answered 408 and closed.
HTTP_HEADER_TIMEOUT_SECONDS = env.float("HTTP_HEADER_TIMEOUT_SECONDS", default=10.0)
# A connection whose request body has not all arrived this long after its headers is closed.
HTTP_BODY_TIMEOUT_SECONDS = env.float("HTTP_BODY_TIMEOUT_SECONDS", default=30.0)

# --- Service ----------------------------------------------------------------------------
READY_CHECK_TIMEOUT_SECONDS = env.float("READY_CHECK_TIMEOUT_SECONDS", default=2.0)
# How long one readiness answer serves every /api/ready (one evaluation at a time).
READY_CACHE_SECONDS = env.float("READY_CACHE_SECONDS", default=1.0)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
STATIC_URL = "static/"
# Where `collectstatic` puts the admin's files for the proxy to serve (the image: /app/static).
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / ".stack" / "static")

SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- Metrics ------------------------------------------------------------------------------
# With a token, /api/metrics requires `Authorization: Bearer <token>`; without one it answers
# only peers in these networks whose request came through no proxy (feedapp/metrics.py).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_NETWORKS = [
    ipaddress.ip_network(network.strip())
    for network in env.list(
        "METRICS_ALLOWED_NETWORKS",
        default=[
            "127.0.0.0/8",
            "::1/128",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "fc00::/7",
        ],
    )
]
# The vote consumer serves its metrics on this port (0: not at all) and address.
CONSUMER_METRICS_PORT = env.int("CONSUMER_METRICS_PORT", default=0)
CONSUMER_METRICS_ADDRESS = env.str("CONSUMER_METRICS_ADDRESS", default="127.0.0.1")

# --- Logs -----------------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
# plain: one readable line per record; json: one JSON object per line. Both carry the
# request id of the request that logged it (feedapp/requestlog.py).
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    raise environ.ImproperlyConfigured("LOG_FORMAT must be 'plain' or 'json'")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "feedapp.requestlog.RequestIdFilter"},
        # An outage is logged once by the app, not on each retry of the client library.
        "outages": {"()": "feedapp.outages.QuietLibrariesDuringOutages"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "feedapp.requestlog.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id", "outages"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "kafka": {"level": "WARNING"},
        "django.db.backends": {"level": "WARNING"},
        # uvicorn's own lines in a server process (from the app's import on), through the
        # same handler: with LOG_FORMAT=json the log is JSON throughout. Only a --workers
        # supervisor, which never imports the app, keeps uvicorn's format. Its access log
        # (uvicorn.access) is left alone: off in production, feedapp.requestlog logs requests.
        "uvicorn": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
    },
}
