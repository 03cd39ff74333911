"""Why a poll operation was refused, with the HTTP status the API answers for it."""

from __future__ import annotations


class PollError(Exception):
    status_code = 400
    message = "Bad request"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message


class NotAuthenticated(PollError):
    status_code = 401
    message = "Not authenticated"


class NotAllowed(PollError):
    """The poll is visible to the caller, but the right asked for is not theirs."""

    status_code = 403
    message = "Not allowed"


class PollNotFound(PollError):
    """The poll does not exist or the caller may not view it: deliberately the same."""

    status_code = 404
    message = "Poll not found"
