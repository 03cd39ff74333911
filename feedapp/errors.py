"""The project's one error vocabulary: why a service refused, and the status that says so.

Services (accounts, polls, votes, realtime) raise these, never an HTTP framework's
exception; they do not know who called them. Each transport renders them in one place:
the JSON API as `{"detail": message}` with the class's status (feedapp.api), the live
counts WebSocket as a close code (realtime.websocket). Subclasses only pick a status
and a default message; apps add their own for refusals with a fixed wording
(e.g. polls.errors.PollNotFound).
"""

from __future__ import annotations


class ServiceError(Exception):
    """A refusal a caller can act on: `status_code` and a message safe to show."""

    status_code = 400
    message = "Bad request"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.message
        super().__init__(self.message)

    def headers(self) -> dict[str, str]:
        """HTTP headers that go with the answer (none but for rate limits)."""
        return {}


class NotAuthenticated(ServiceError):
    """No valid session, or credentials that do not name an active account."""

    status_code = 401
    message = "Not authenticated"


class Forbidden(ServiceError):
    """The caller is known (and may see the object) but the right asked for is not theirs."""

    status_code = 403
    message = "Not allowed"


class NotFound(ServiceError):
    """No such object, or one the caller may not see: deliberately the same answer."""

    status_code = 404
    message = "Not found"


class Conflict(ServiceError):
    """The request contradicts the current state (a taken name, an expired poll)."""

    status_code = 409
    message = "Conflict"


class PayloadTooLarge(ServiceError):
    status_code = 413
    message = "Request body too large"


class UnsupportedMediaType(ServiceError):
    status_code = 415
    message = "Send the body as application/json"


class TooManyRequests(ServiceError):
    """Past a rate or connection limit; `retry_after` (seconds) when the wait is known."""

    status_code = 429
    message = "Too many requests"

    def __init__(self, retry_after: int | None = None, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = None if retry_after is None else max(1, retry_after)

    def headers(self) -> dict[str, str]:
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}


class Unavailable(ServiceError):
    """A service the request needs is down or the process is stopping; retrying may work.

    Sent with Retry-After. Not logged per request: the outage behind it is logged once
    where it is noticed (feedapp.outages).
    """

    status_code = 503
    message = "Service unavailable"

    def __init__(self, message: str | None = None, retry_after: int = 2) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}
