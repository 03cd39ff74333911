"""Signals of the polls app, sent only after the change they announce has committed.

`poll_deleted` (keyword argument `poll_id`; sender None) lets other apps react to a
deletion without polls knowing them: the vote app drops the poll's cached counts, the
realtime app ends its live streams. They connect their receivers in their
`AppConfig.ready`; receivers are `async def receiver(sender, poll_id, **kwargs)`.
`do_delete_poll` and `do_delete_poll_as_staff` send it once the deleting transaction
committed, so no receiver ever acts on a deletion that was rolled back.
"""

from __future__ import annotations

from django.dispatch import Signal

poll_deleted = Signal()


async def send_poll_deleted(poll_id: int) -> None:
    """Run every receiver of `poll_deleted`; call only after the deletion committed.

    Robustly: the deletion is committed whatever a receiver does, so one failing cache
    or stream neither turns it into an error nor keeps the others from running (Django
    logs the failure on the `django.dispatch` logger).
    """
    await poll_deleted.asend_robust(sender=None, poll_id=poll_id)
