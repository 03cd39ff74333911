"""Rows of the moderation statements, and the names the schema knows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# The values of the database enums report_reason and report_resolution.
Reason = Literal["spam", "abuse", "illegal", "other"]
Resolution = Literal["dismissed", "creator_banned"]


@dataclass(frozen=True)
class ReportTarget:
    may_view: bool


@dataclass(frozen=True)
class ResolvedReports:
    """How many open reports of one poll an action resolved."""

    poll_id: int
    reports: int
