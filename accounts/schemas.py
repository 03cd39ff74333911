"""Request and response bodies of the accounts API.

Field names are the HTTP contract; class names are the OpenAPI component names, kept
from the first backend so that its generated frontend client keeps compiling.
"""

from __future__ import annotations

import re

from ninja import Schema
from pydantic import ConfigDict, Field, field_validator

from feedapp.schemas import valid_unicode

USERNAME_PATTERN = r"^[A-Za-z0-9_.-]+$"
USERNAME_MIN_LENGTH, USERNAME_MAX_LENGTH = 3, 32
_EMAIL_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_DOMAIN_LABEL = re.compile(r"(?:[^\W_]|-){1,63}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _email(value: str) -> str:
    local, at, domain = value.rpartition("@")
    labels = domain.split(".")
    valid = (
        at == "@"
        and len(local) <= 64
        and _EMAIL_LOCAL.fullmatch(local) is not None
        and len(labels) >= 2
        and all(_DOMAIN_LABEL.fullmatch(label) for label in labels)
        and not any(label.startswith("-") or label.endswith("-") for label in labels)
        and not labels[-1].isdigit()
    )
    if not valid:
        raise ValueError("not a valid email address")
    return value


class Input(Schema):
    # Unknown fields are a client bug worth reporting (422), not something to drop silently.
    model_config = ConfigDict(extra="forbid")


class CreateUserPayload(Input):
    username: str = Field(
        min_length=USERNAME_MIN_LENGTH,
        max_length=USERNAME_MAX_LENGTH,
        pattern=USERNAME_PATTERN,
        description="3 to 32 letters, digits, `_`, `.` or `-`",
    )
    email: str = Field(min_length=3, max_length=254, description="An email address")
    password: str = Field(min_length=8, max_length=128, description="8 to 128 characters")

    @field_validator("email")
    @classmethod
    def _valid_email(cls, value: str) -> str:
        return _email(valid_unicode(value))

    @field_validator("password")
    @classmethod
    def _valid_password(cls, value: str) -> str:
        return valid_unicode(value)


class LoginPayload(Input):
    username: str = Field(min_length=1, max_length=254, description="The username or the email")
    password: str = Field(min_length=1, max_length=128)

    @field_validator("username")
    @classmethod
    def _valid_login(cls, value: str) -> str:
        if _CONTROL.search(value):
            raise ValueError("must not contain control characters")
        return valid_unicode(value)

    @field_validator("password")
    @classmethod
    def _valid_password(cls, value: str) -> str:
        return valid_unicode(value)


class UserInfo(Schema):
    id: int
    username: str
    email: str
