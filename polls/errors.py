"""The polls app's own refusals, in the project's error vocabulary (feedapp.errors)."""

from __future__ import annotations

from feedapp.errors import NotFound


class PollNotFound(NotFound):
    """The poll does not exist or the caller may not view it: deliberately the same."""

    message = "Poll not found"
