"""Reports as an unmanaged model, and the review queue as a view of polls, for the admin.

The data layer is SQL (moderation/services.py, db/queries/moderation.sql): these
read-only models (db.readonly) only let the admin list, filter and show rows, and every
change goes through moderation.services (or polls.services and accounts.services, whose
deletions and bans it uses). dbmate owns the table; tests/test_admin_schema.py compares them.
"""

from __future__ import annotations

from typing import get_args

from django.conf import settings
from django.db import models
from django.db.models.functions import Now

from db.fields import EnumField
from db.readonly import ReadOnly, ReadOnlyManager
from moderation.rows import Reason, Resolution
from polls.models import Poll


class Report(ReadOnly):
    id = models.BigAutoField(primary_key=True)
    poll = models.ForeignKey(Poll, on_delete=models.CASCADE, related_name="reports")
    reporter = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    reason = EnumField(enum="report_reason", values=get_args(Reason))
    # NULL when the reporter wrote none; never an empty string (the table's check).
    note = models.TextField(null=True, blank=True)  # noqa: DJ001
    created_at = models.DateTimeField("reported at", db_default=Now())
    # NULL while the report is open.
    resolution = EnumField(
        enum="report_resolution", values=get_args(Resolution), null=True, blank=True
    )
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        db_column="resolved_by",
        related_name="+",
    )
    resolved_at = models.DateTimeField(null=True, blank=True)

    objects = ReadOnlyManager["Report"]()

    class Meta:
        managed = False
        db_table = "poll_report"
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"report #{self.pk} ({self.reason}) on poll #{self.poll_id}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


class ReportedPoll(ReadOnly):
    """A poll in the review queue: its open reports, counted by reason.

    The view poll_report_queue aggregates the open reports per poll; the queue joins the
    poll (and its creator) only for the rows of the page it shows.
    """

    poll = models.OneToOneField(
        Poll,
        primary_key=True,
        # A view has no constraints: the row goes when the poll's open reports do.
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    open_reports = models.BigIntegerField("open reports")
    open_spam = models.BigIntegerField()
    open_abuse = models.BigIntegerField()
    open_illegal = models.BigIntegerField()
    open_other = models.BigIntegerField()
    first_reported = models.DateTimeField("first report")
    last_reported = models.DateTimeField("last report")

    objects = ReadOnlyManager["ReportedPoll"]()

    class Meta:
        managed = False
        db_table = "poll_report_queue"
        ordering = ["-last_reported"]
        verbose_name = "reported poll"
        verbose_name_plural = "review queue"

    def __str__(self) -> str:
        return str(self.poll)

    def by_reason(self) -> dict[str, int]:
        """Open reports per reason, only the reasons given."""
        counts = {reason: getattr(self, f"open_{reason}") for reason in get_args(Reason)}
        return {reason: count for reason, count in counts.items() if count}
