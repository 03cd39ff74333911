"""A poll's counts version and total votes as an unmanaged model, for the admin only.

The vote consumer keeps the table (db/queries/votes.sql); the admin reads the total to
show and sort polls by their votes without summing every poll's counts on each page.
dbmate owns the table and tests/test_admin_schema.py compares the two.
"""

from __future__ import annotations

from django.db import models

from db.readonly import ReadOnly, ReadOnlyManager
from polls.models import Poll


class PollCounts(ReadOnly):
    poll = models.OneToOneField(
        Poll, primary_key=True, on_delete=models.CASCADE, related_name="counts"
    )
    # Grows by one with every committed change to the poll's counts.
    version = models.BigIntegerField()
    # The sum of the poll's vote_count rows, as of that version.
    total_votes = models.BigIntegerField("votes")

    objects = ReadOnlyManager["PollCounts"]()

    class Meta:
        managed = False
        db_table = "poll_counts_version"
        verbose_name = "poll counts"
        verbose_name_plural = "poll counts"

    def __str__(self) -> str:
        return f"counts of poll #{self.pk}: {self.total_votes} votes (version {self.version})"
