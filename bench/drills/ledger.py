"""The ledger of a drill: every vote request sent and the answer it got, and what the
final state must therefore be.

API.md: 201 means the vote is durably in Kafka and will be applied; 503 means "not
confirmed: it may still be applied". A request without an answer (connection refused,
reset, timed out) is as uncertain as a 503. So for each (user, poll), whose requests are
sent one after the other, the final vote must be the last 201's option, or the option of
an uncertain request sent after it (or no vote at all when nothing got a 201).
"""

from __future__ import annotations

import csv
import dataclasses
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

CERTAIN = 201
UNCERTAIN = (0, 503)  # 0: no answer


@dataclass(frozen=True)
class Entry:
    user_id: int
    poll_id: int
    option_id: int
    status: int
    sent_at: float  # seconds since the ledger began
    answered_at: float
    server: str


@dataclass
class Ledger:
    began: float = field(default_factory=time.monotonic)
    entries: list[Entry] = field(default_factory=list)

    def now(self) -> float:
        return time.monotonic() - self.began

    def record(
        self, user_id: int, poll_id: int, option_id: int, status: int, sent_at: float, server: str
    ) -> None:
        self.entries.append(Entry(user_id, poll_id, option_id, status, sent_at, self.now(), server))

    def save(self, path: Path) -> None:
        """Every request and answer, one CSV line each."""
        with path.open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow([f.name for f in dataclasses.fields(Entry)])
            for entry in self.entries:
                writer.writerow(dataclasses.astuple(entry))

    def statuses(self) -> Counter[int]:
        return Counter(entry.status for entry in self.entries)

    def server_errors(self) -> list[Entry]:
        """5xx answers other than 503 (which API.md defines for outages)."""
        return [e for e in self.entries if e.status >= 500 and e.status != 503]

    def unexpected(self) -> list[Entry]:
        """Answers a vote of a voter on a public, open poll must never get."""
        allowed = {0, 201, 429, 503}
        return [e for e in self.entries if e.status not in allowed and e.status < 500]

    def allowed_votes(self) -> dict[tuple[int, int], set[int | None]]:
        """(user, poll) -> the final votes the answers allow (None: no vote)."""
        allowed: dict[tuple[int, int], set[int | None]] = {}
        for entry in sorted(self.entries, key=lambda e: e.sent_at):
            if entry.status == 429:
                continue  # refused before anything was sent
            key = (entry.user_id, entry.poll_id)
            options = allowed.setdefault(key, {None})
            if entry.status == CERTAIN:
                options.clear()
                options.add(entry.option_id)
            elif entry.status in UNCERTAIN or entry.status >= 500:
                options.add(entry.option_id)
        return allowed

    def confirmed(self) -> dict[tuple[int, int], int]:
        """(user, poll) -> the option of the last 201."""
        last: dict[tuple[int, int], int] = {}
        for entry in sorted(self.entries, key=lambda e: e.sent_at):
            if entry.status == CERTAIN:
                last[(entry.user_id, entry.poll_id)] = entry.option_id
        return last

    def first_accepted_after(self, moment: float) -> float | None:
        """When the first request sent after `moment` got a 201 (seconds since the start)."""
        times = [e.answered_at for e in self.entries if e.status == CERTAIN and e.sent_at >= moment]
        return min(times) if times else None
