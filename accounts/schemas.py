"""Request and response bodies of the accounts API.

Field names are the HTTP contract; class names are the OpenAPI component names, kept
from the first backend so that its generated frontend client keeps compiling.
"""

from __future__ import annotations

from ninja import Schema
from pydantic import ConfigDict, Field, field_validator

from feedapp.schemas import valid_unicode

USERNAME_PATTERN = r"^[A-Za-z0-9_.-]+$"
USERNAME_MIN_LENGTH, USERNAME_MAX_LENGTH = 3, 32
# The rules are patterns the OpenAPI schema declares as they are enforced, so that any
# value a client generates from the schema is accepted (ECMAScript, Python and Rust
# regex syntax alike). An email: a dot-atom local part, then two or more DNS labels,
# the last starting with a letter (no IP-literal domains).
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_TOP_LABEL = r"[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL_PATTERN = rf"^{_ATOM}(?:\.{_ATOM})*@(?:{_LABEL}\.)+{_TOP_LABEL}$"
# A login names a username or an email: any text but control characters.
LOGIN_PATTERN = r"^[^\x00-\x1f\x7f]+$"


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
    email: str = Field(
        min_length=3, max_length=254, pattern=EMAIL_PATTERN, description="An email address"
    )
    password: str = Field(min_length=8, max_length=128, description="8 to 128 characters")

    @field_validator("password")
    @classmethod
    def _valid_password(cls, value: str) -> str:
        return valid_unicode(value)


class LoginPayload(Input):
    username: str = Field(
        min_length=1,
        max_length=254,
        pattern=LOGIN_PATTERN,
        description="The username or the email (no control characters)",
    )
    password: str = Field(min_length=1, max_length=128)

    @field_validator("username")
    @classmethod
    def _valid_login(cls, value: str) -> str:
        return valid_unicode(value)

    @field_validator("password")
    @classmethod
    def _valid_password(cls, value: str) -> str:
        return valid_unicode(value)


class ChangePasswordPayload(Input):
    current_password: str = Field(min_length=1, max_length=128)
    new_password: str = Field(min_length=8, max_length=128, description="8 to 128 characters")

    @field_validator("current_password", "new_password")
    @classmethod
    def _valid_password(cls, value: str) -> str:
        return valid_unicode(value)


class UserInfo(Schema):
    id: int
    username: str
    email: str
