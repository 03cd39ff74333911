"""Polls, their options and grants as unmanaged models, for the admin's pages only.

The data layer is SQL (polls/services.py, db/queries/polls.sql); these models only let
the admin list, filter and show rows. They are read-only (db.readonly): every change
goes through polls.services, so `Poll.objects.filter(...).delete()` cannot skip what a
deletion must do (drop cached counts, end live streams). dbmate owns the tables and
tests/test_admin_schema.py fails when a model and its table disagree. `on_delete` says
what the database's foreign keys do, so that the admin's deletion summary lists what
really goes.
"""

from __future__ import annotations

from typing import get_args

from django.conf import settings
from django.db import models
from django.db.models.functions import Now
from django.utils import timezone

from db.fields import EnumField
from db.readonly import ReadOnly, ReadOnlyManager
from polls.rows import PollPerms, Role


class Poll(ReadOnly):
    id = models.BigAutoField(primary_key=True)
    question = models.TextField()
    creator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="polls"
    )
    poll_perms = EnumField(
        "visibility", enum="poll_perms", values=get_args(PollPerms), default="public_vote"
    )
    created_at = models.DateTimeField(db_default=Now())
    expires_at = models.DateTimeField(null=True, blank=True)
    # Set while enough users' reports hide the poll from the public (moderation).
    hidden_at = models.DateTimeField(
        "hidden since",
        null=True,
        blank=True,
        help_text="Hidden from the public feed and anonymous view until the reports are dismissed.",
    )

    objects = ReadOnlyManager["Poll"]()

    class Meta:
        managed = False
        db_table = "poll"
        ordering = ["-id"]

    def __str__(self) -> str:
        question = self.question if len(self.question) <= 60 else f"{self.question[:59]}…"
        return f"#{self.pk} {question}"

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()


class VoteOption(ReadOnly):
    id = models.BigAutoField(primary_key=True)
    poll = models.ForeignKey(Poll, on_delete=models.CASCADE, related_name="options")
    position = models.SmallIntegerField()
    text = models.TextField()

    objects = ReadOnlyManager["VoteOption"]()

    class Meta:
        managed = False
        db_table = "vote_option"
        ordering = ["poll", "position"]
        unique_together = [("poll", "position")]

    def __str__(self) -> str:
        return str(self.text)


class PollGrant(ReadOnly):
    id = models.BigAutoField(primary_key=True)
    role = EnumField(enum="poll_role", values=get_args(Role))
    # NULL: everyone (a public poll's grant).
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="grants",
    )
    # NULL: every poll (a moderator's grant).
    poll = models.ForeignKey(
        Poll, on_delete=models.CASCADE, null=True, blank=True, related_name="grants"
    )
    granted_at = models.DateTimeField(db_default=Now())
    # NULL: no end. Revoking sets it to the moment of revocation; rows are history.
    expires_at = models.DateTimeField(null=True, blank=True)
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        db_column="granted_by",
        related_name="+",
    )

    objects = ReadOnlyManager["PollGrant"]()

    class Meta:
        managed = False
        db_table = "poll_grant"
        ordering = ["-id"]
        verbose_name = "grant"

    def __str__(self) -> str:
        who = self.user if self.user_id is not None else "everyone"
        where = f"poll #{self.poll_id}" if self.poll_id is not None else "every poll"
        return f"{self.role} for {who} on {where}"

    @property
    def in_force(self) -> bool:
        """Whether the grant gives its role now."""
        now = timezone.now()
        return self.granted_at <= now and (self.expires_at is None or self.expires_at > now)
