"""Rows of the polls statements as typed objects, and the names the schema knows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

# The values of the database enums poll_perms, poll_role and poll_permission.
PollPerms = Literal["public_view", "public_vote", "private"]
Role = Literal["creator", "voter", "viewer", "moderator"]
# Moderators span every poll: granted by the admin, never through a poll's roles.
GrantableRole = Literal["creator", "voter", "viewer"]
Permission = Literal["poll:view", "poll:vote", "poll:delete", "poll:assign_role"]


@dataclass(frozen=True)
class PollSummaryRow:
    id: int
    question: str
    expires_at: datetime | None
    creator_name: str
    options: list[str]
    option_ids: list[int]


@dataclass(frozen=True)
class PollRow(PollSummaryRow):
    user_vote: int | None


@dataclass(frozen=True)
class PollAccess:
    may_view: bool
    may_act: bool


@dataclass(frozen=True)
class UserGrantRow:
    role: str
    username: str
    user_id: int


@dataclass(frozen=True)
class UserIdRow:
    user_id: int


@dataclass(frozen=True)
class StaffDeletion:
    allowed: bool
    deleted: bool


@dataclass(frozen=True)
class IdRow:
    id: int
