"""Faults for drills and failure tests: freeze a service of a stack, or stop and start it.

Freezing (SIGSTOP) keeps the service's sockets open, so clients see a server that accepts
connections and never answers: the hardest outage to notice. Stopping closes them.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager

from stack.__main__ import SERVICES
from stack.process import StackError
from stack.profiles import Profile


def service_pid(name: str, profile: Profile) -> int:
    """The running service's process id; StackError when it does not run."""
    pid: int | None = SERVICES[name].pid(profile)
    if pid is None:
        raise StackError(f"{name} of the {profile.name} stack is not running")
    return pid


@contextmanager
def frozen(name: str, profile: Profile) -> Iterator[int]:
    """The service stopped with SIGSTOP for the block, continued after it (even on error)."""
    pid = service_pid(name, profile)
    os.kill(pid, signal.SIGSTOP)
    try:
        yield pid
    finally:
        os.kill(pid, signal.SIGCONT)


@contextmanager
def stopped(name: str, profile: Profile) -> Iterator[None]:
    """The service stopped for the block and started again after it (even on error)."""
    SERVICES[name].stop(profile)
    try:
        yield
    finally:
        SERVICES[name].start(profile)
