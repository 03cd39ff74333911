"""Rows of the accounts statements as typed objects.

`UserRow` is a user as the services know them (id, names, flags). It is not
accounts.models.User, the admin's Django model of the same table.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class UserRow:
    id: int
    username: str
    email: str
    is_active: bool
    is_staff: bool
    # Bumped to end every session of the user (see accounts.tokens).
    session_generation: int = 0


@dataclass(frozen=True)
class SessionUserRow(UserRow):
    session_revoked: bool = False


@dataclass(frozen=True)
class Credentials:
    id: int
    is_active: bool
    session_generation: int
    password: str = field(repr=False)


@dataclass(frozen=True)
class SignIn:
    """Who signed in, and the generation their new session belongs to."""

    user_id: int
    session_generation: int


@dataclass(frozen=True)
class Taken:
    username_taken: bool
    email_taken: bool
