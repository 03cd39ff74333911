"""Hooks that run after a poll deletion has been committed.

Other apps react to a deletion without polls knowing them: the vote app drops the
poll's cached counts, the realtime app ends its live streams. They register here
(typically in their AppConfig.ready) and `do_delete_poll` notifies them only once the
deleting transaction has committed, so no hook ever acts on a deletion that was
rolled back.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

PollDeletedHook = Callable[[int], Awaitable[None]]

_poll_deleted_hooks: list[PollDeletedHook] = []


def on_poll_deleted(hook: PollDeletedHook) -> PollDeletedHook:
    """Register `async hook(poll_id)` to run after each committed deletion; usable as decorator."""
    if hook not in _poll_deleted_hooks:
        _poll_deleted_hooks.append(hook)
    return hook


def remove_poll_deleted_hook(hook: PollDeletedHook) -> None:
    """Unregister a hook (no-op when it is not registered)."""
    if hook in _poll_deleted_hooks:
        _poll_deleted_hooks.remove(hook)


async def notify_poll_deleted(poll_id: int) -> None:
    """Run every hook in registration order; call only after the deletion committed."""
    for hook in list(_poll_deleted_hooks):
        try:
            await hook(poll_id)
        except Exception:
            # The deletion is committed whatever a hook does: one failing cache or
            # stream must neither turn it into an error nor starve the other hooks.
            log.exception("poll_deleted hook %r failed for poll %s", hook, poll_id)
