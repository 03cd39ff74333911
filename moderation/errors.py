"""Moderation's own refusals, in the project's error vocabulary (feedapp.errors)."""

from __future__ import annotations

from feedapp.errors import Conflict


class AlreadyReported(Conflict):
    """The caller already has an open report on this poll."""

    message = "You have already reported this poll"
