"""Waiting between retries while a service (PostgreSQL, Valkey, Kafka) is down."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Waits that double from `first` up to `cap`; `reset()` once the service answers again.

    One per retry loop: `next()` gives the wait before the next attempt and doubles the
    one after it, so a long outage is retried every `cap` seconds, not in a tight loop.
    """

    first: float
    cap: float
    current: float = field(init=False)

    def __post_init__(self) -> None:
        self.current = self.first

    def next(self) -> float:
        """The wait before the next attempt (the one after it doubles, up to `cap`)."""
        wait = self.current
        self.current = min(self.current * 2, self.cap)
        return wait

    def reset(self) -> None:
        """Start again from `first` (after a success)."""
        self.current = self.first
