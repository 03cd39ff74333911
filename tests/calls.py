"""Counting the calls of one object's method: how often a client went round its loop."""

from __future__ import annotations

from typing import Any


class CallCounter:
    """Replaces `owner.name` with a wrapper that counts its calls in `calls`."""

    def __init__(self, owner: Any, name: str) -> None:
        self.calls = 0
        wrapped = getattr(owner, name)

        def counting(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return wrapped(*args, **kwargs)

        setattr(owner, name, counting)
