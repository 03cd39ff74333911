"""Model fields for the PostgreSQL types Django has no field for: citext and enums.

Only the admin's unmanaged models use them (the data layer is SQL). Each names its
column type in `db_type`, which is what the schema test compares with the migrated
tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper


class CITextField(models.TextField):
    """A `citext` column: the database compares its values ignoring letter case."""

    description = "Case-insensitive text"

    def db_type(self, connection: BaseDatabaseWrapper) -> str:
        return "citext"


class EnumField(models.TextField):
    """A column of the PostgreSQL enum type `enum`; the choices are its labels, in order."""

    description = "A PostgreSQL enum"

    def __init__(self, *args: Any, enum: str, values: Sequence[str], **kwargs: Any) -> None:
        self.enum = enum
        self.values = tuple(values)
        kwargs.setdefault("choices", [(value, value) for value in self.values])
        super().__init__(*args, **kwargs)

    def db_type(self, connection: BaseDatabaseWrapper) -> str:
        return self.enum

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        kwargs.pop("choices", None)
        return name, path, args, {**kwargs, "enum": self.enum, "values": list(self.values)}
