"""Outages of the services a process depends on, each reported once: when it begins and
when it ends, not once per request that it fails.

While an outage is known, the warnings that the service's client library repeats on every
reconnection attempt are dropped from the console (`QuietLibrariesDuringOutages`, set on
the handler in settings.LOGGING); the outage's own two lines say what happened.
"""

from __future__ import annotations

import logging
import time


class Outage:
    """One service's state as this process saw it on its last attempt to use it."""

    def __init__(self, service: str, log: logging.Logger) -> None:
        self.service = service
        self.log = log
        self.since: float | None = None
        self.failures = 0

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, cause: object, consequence: str, count: bool = True) -> None:
        """A use of the service failed (`count`: a request failed with it); the first
        failure of an outage is logged."""
        self.failures += count
        if self.since is None:
            self.since = time.monotonic()
            self.log.warning("%s unavailable (%s): %s", self.service, consequence, cause)

    def ended(self) -> None:
        """A use of the service succeeded; ends (and logs) the outage if there was one."""
        if self.since is not None:
            self.log.warning(
                "%s available again after %.1f s; %d requests failed meanwhile",
                self.service,
                time.monotonic() - self.since,
                self.failures,
            )
            self.since, self.failures = None, 0


POSTGRESQL = Outage("PostgreSQL", logging.getLogger("db.pool"))
KAFKA = Outage("Kafka", logging.getLogger("votes.producer"))
VALKEY = Outage("Valkey", logging.getLogger("db.valkey"))
VALKEY_CONSEQUENCE = (
    "rate limits let requests through, counts are read from PostgreSQL, stream limits "
    "hold per process"
)

# Client libraries' loggers whose retry chatter an outage already covers.
_LIBRARIES = {"psycopg.pool": POSTGRESQL, "kafka": KAFKA, "valkey": VALKEY}


class QuietLibrariesDuringOutages(logging.Filter):
    """Drop a client library's records while the outage of its service is known (and was
    reported); CRITICAL always passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.CRITICAL:
            return True
        for prefix, outage in _LIBRARIES.items():
            if record.name == prefix or record.name.startswith(prefix + "."):
                return not outage.down
        return True
