"""Explicit singletons: one object per process, or one per event loop, with a clear start
and stop.

Clients of PostgreSQL, Valkey and Kafka are expensive to make and meant to be shared,
so each is made once, on first use. Synchronous ones are shared by the whole process
(`PerProcess`: a lock keeps racing threads from making two). Asyncio ones belong to the
loop they were made in and cannot serve another (`PerLoop`): each loop gets its own,
forgotten when the loop is.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerProcess(Generic[T]):
    """One `T` per process: `get()` makes it on first use, `close()` closes and forgets it."""

    def __init__(self, make: Callable[[], T], close: Callable[[T], None]) -> None:
        self._make = make
        self._close = close
        self._value: T | None = None
        self._lock = threading.Lock()

    @property
    def current(self) -> T | None:
        """The object if it was made (without making it)."""
        return self._value

    def get(self) -> T:
        with self._lock:
            if self._value is None:
                self._value = self._make()
            return self._value

    def close(self) -> None:
        """Close the object, if made; the next `get()` makes a fresh one."""
        with self._lock:
            value, self._value = self._value, None
            if value is not None:
                self._close(value)


class PerLoop(Generic[T]):
    """One `T` per event loop: `get()` makes the running loop's on first use."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._values: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = (
            weakref.WeakKeyDictionary()
        )

    def get(self) -> T:
        loop = asyncio.get_running_loop()
        value = self._values.get(loop)
        if value is None:
            value = self._values[loop] = self._make()
        return value

    def pop(self) -> T | None:
        """Forget the running loop's object and hand it over (to be closed by the caller)."""
        return self._values.pop(asyncio.get_running_loop(), None)

    def items(self) -> list[tuple[asyncio.AbstractEventLoop, T]]:
        """Every loop's object (e.g. to reach them all from another thread)."""
        return list(self._values.items())
