"""Every Django model matches the table dbmate built for it, and no app has Django migrations.

The admin's models are unmanaged and Django's own tables (content types, admin log,
sessions) come from a dbmate migration: this is what keeps each pair in step.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from django.apps import apps
from django.conf import settings
from django.db import connection, models
from django.db.migrations.loader import MigrationLoader
from django.test.utils import isolate_apps

from accounts.models import User
from db.fields import EnumField
from tests.schema_drift import model_drift, read_table

# Django's permission and group tables do not exist: rights are fixed in accounts.models.
NOT_IN_DATABASE = {"auth.Permission", "auth.Group"}


def checked_models() -> list[type[models.Model]]:
    found = [model for model in apps.get_models() if model._meta.label not in NOT_IN_DATABASE]
    return sorted(found, key=lambda model: model._meta.label)


@pytest.fixture(scope="module")
def conn() -> Iterator[psycopg.Connection]:
    with psycopg.connect(settings.DATABASE_URL, autocommit=True) as connection_:
        yield connection_


def test_the_admins_tables_are_among_those_checked() -> None:
    labels = {model._meta.label for model in checked_models()}
    assert {
        "accounts.User",
        "polls.Poll",
        "polls.VoteOption",
        "polls.PollGrant",
        "votes.PollCounts",
        "moderation.Report",
        "moderation.ReportedPoll",
        "contenttypes.ContentType",
        "admin.LogEntry",
        "sessions.Session",
    } <= labels


@pytest.mark.parametrize("model", checked_models(), ids=lambda model: model._meta.label)
def test_model_matches_its_table(conn, model) -> None:
    assert model_drift(model, read_table(conn, model._meta.db_table), connection) == []


def test_feedapp_models_are_unmanaged() -> None:
    for label in ("accounts", "polls", "moderation", "votes"):
        for model in apps.get_app_config(label).get_models():
            assert not model._meta.managed, f"{model._meta.label}: dbmate owns the tables"


def test_no_app_has_django_migrations() -> None:
    # dbmate is the only owner of the schema: there is nothing for `migrate` to run.
    loader = MigrationLoader(None, ignore_no_migrations=True)
    assert loader.migrated_apps == set()
    assert loader.disk_migrations == {}


@isolate_apps("polls")
def test_a_model_that_disagrees_is_caught(conn) -> None:
    class WrongPoll(models.Model):
        id = models.BigAutoField(primary_key=True)
        question = models.CharField(max_length=500)
        creator = models.ForeignKey(User, on_delete=models.SET_NULL, null=True)
        poll_perms = EnumField(enum="poll_perms", values=["public", "private"])
        expires_at = models.DateTimeField()
        title = models.TextField()
        # created_at and hidden_at left out

        class Meta:
            app_label = "polls"
            managed = False
            db_table = "poll"

        def __str__(self) -> str:
            return str(self.question)

    problems = model_drift(WrongPoll, read_table(conn, "poll"), connection)
    where = "polls.WrongPoll (poll)"
    assert sorted(problems) == sorted(
        [
            f"{where}: column created_at has no field",
            f"{where}: column hidden_at has no field",
            f"{where}: field title has no column title",
            f"{where}: question is text, the model says character varying(500)",
            f"{where}: creator_id is NOT NULL, the model says null",
            f"{where}: creator_id is ON DELETE CASCADE, the model says SET_NULL",
            f"{where}: poll_perms takes ['public_view', 'public_vote', 'private'],"
            " the model ['public', 'private']",
            f"{where}: expires_at is NULL, the model says not null",
        ]
    )


def test_a_table_that_disagrees_is_caught() -> None:
    # A temporary table of the same name shadows the real one for this session only.
    with psycopg.connect(settings.DATABASE_URL) as session:
        session.execute(
            """
            CREATE TEMPORARY TABLE "user" (
                id bigint PRIMARY KEY, username text NOT NULL UNIQUE, email citext,
                password text NOT NULL, is_active boolean NOT NULL, is_staff boolean NOT NULL,
                is_superuser boolean NOT NULL, last_login timestamptz, nickname text,
                session_generation integer NOT NULL
            )
            """
        )
        problems = model_drift(User, read_table(session, "user"), connection)
        session.rollback()
    where = "accounts.User (user)"
    assert sorted(problems) == sorted(
        [
            f"{where}: column nickname has no field",
            f"{where}: field created_at has no column created_at",
            f"{where}: username is text, the model says citext",
            f"{where}: email is NULL, the model says not null",
            f"{where}: email is unique in the model, not in the database",
        ]
    )


@isolate_apps("moderation")
def test_a_view_that_disagrees_is_caught(conn) -> None:
    # A view has no keys or NOT NULL to compare: its columns and their types are checked.
    class WrongQueue(models.Model):
        poll_id = models.BigIntegerField(primary_key=True)
        open_reports = models.IntegerField()
        open_spam = models.BigIntegerField()
        open_abuse = models.BigIntegerField()
        open_illegal = models.BigIntegerField()
        first_reported = models.DateTimeField()
        last_reported = models.DateTimeField()
        newest_note = models.TextField()

        class Meta:
            app_label = "moderation"
            managed = False
            db_table = "poll_report_queue"

        def __str__(self) -> str:
            return str(self.poll_id)

    table = read_table(conn, "poll_report_queue")
    assert table is not None and table.is_view
    where = "moderation.WrongQueue (poll_report_queue)"
    assert sorted(model_drift(WrongQueue, table, connection)) == sorted(
        [
            f"{where}: column open_other has no field",
            f"{where}: field newest_note has no column newest_note",
            f"{where}: open_reports is bigint, the model says integer",
        ]
    )


@isolate_apps("polls")
def test_a_missing_table_is_caught(conn) -> None:
    class Nowhere(models.Model):
        class Meta:
            app_label = "polls"
            managed = False
            db_table = "no_such_table"

        def __str__(self) -> str:
            return "nowhere"

    assert model_drift(Nowhere, read_table(conn, "no_such_table"), connection) == [
        "polls.Nowhere (no_such_table): no such table"
    ]
