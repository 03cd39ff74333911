"""Why a report was refused, beyond the poll errors (401, 404) it shares with polls."""

from __future__ import annotations

from polls.errors import PollError


class AlreadyReported(PollError):
    """The caller already has an open report on this poll."""

    status_code = 409
    message = "You have already reported this poll"
