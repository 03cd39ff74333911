"""Read-only Django models: the admin reads tables through them, never writes.

The admin's models are unmanaged views of tables the SQL layer owns. Every change with
side effects goes through an app's services (deleting a poll drops its cached counts
and ends its streams), so the ORM must not write behind their back: saving, deleting,
bulk updates and deletes through these models raise ReadOnlyModel.
"""

from __future__ import annotations

from typing import Any, NoReturn, TypeVar

from django.db import models

M = TypeVar("M", bound=models.Model)


class ReadOnlyModel(Exception):
    """A write through a read-only model: use the app's services instead."""


def refuse_write(model: type[models.Model], what: str) -> NoReturn:
    raise ReadOnlyModel(
        f"{model._meta.label} is read-only: {what} through {model._meta.app_label}.services"
    )


class ReadOnlyQuerySet(models.QuerySet[M]):
    """A queryset that reads; its bulk writes raise ReadOnlyModel."""

    def delete(self) -> NoReturn:
        refuse_write(self.model, "delete")

    def update(self, **kwargs: Any) -> NoReturn:
        refuse_write(self.model, "update")

    def bulk_create(self, *args: Any, **kwargs: Any) -> NoReturn:
        refuse_write(self.model, "create")

    def bulk_update(self, *args: Any, **kwargs: Any) -> NoReturn:
        refuse_write(self.model, "update")

    def _raw_delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        refuse_write(self.model, "delete")


class ReadOnlyManager(models.Manager[M]):
    """The default manager of a read-only model."""

    def get_queryset(self) -> ReadOnlyQuerySet[M]:
        return ReadOnlyQuerySet(self.model, using=self._db)


class ReadOnly(models.Model):
    """Base of the admin's models: instances and querysets read, never write."""

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        refuse_write(type(self), "save")

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        refuse_write(type(self), "delete")
