"""Rows of the votes statements as typed objects."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PollCounts:
    """A poll's absolute counts at one counts version, options in presentation order."""

    poll_id: int
    version: int
    option_ids: list[int]
    vote_counts: list[int]

    def as_list(self) -> list[dict[str, int]]:
        """The API's shape: options in presentation order, zeros included."""
        return [
            {"vote_option_id": option_id, "vote_count": count}
            for option_id, count in zip(self.option_ids, self.vote_counts, strict=True)
        ]


@dataclass(frozen=True)
class VoteCheck:
    may_vote: bool
    option_in_poll: bool
    expired: bool
