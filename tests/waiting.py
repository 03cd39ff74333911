"""Bounded waiting for something that happens in another process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T]], expected: T, within: float = 30.0) -> T:
    """Call `check` until it returns `expected`; the last value otherwise (for the assert)."""
    deadline = time.monotonic() + within
    value = await check()
    while value != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        value = await check()
    return value
