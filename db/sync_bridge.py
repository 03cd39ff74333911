"""One long-lived event loop per process for synchronous callers of async services.

The SQL pool and the Valkey client are per event loop (db.pool, db.valkey). asgiref's
`async_to_sync` runs on a throw-away loop whenever no server loop is around
(management commands, the shell, the consumer), so every call would open a pool
that nothing closes. Running those calls on one background loop instead keeps one
pool and one client for all of them, in any context.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from db.singletons import PerProcess

T = TypeVar("T")


def _start_loop() -> asyncio.AbstractEventLoop:
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="sync-bridge", daemon=True).start()
    return loop


def _stop_loop(loop: asyncio.AbstractEventLoop) -> None:
    loop.call_soon_threadsafe(loop.stop)


_bridge: PerProcess[asyncio.AbstractEventLoop] = PerProcess(_start_loop, _stop_loop)


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` on the bridge loop and wait for its result (or exception)."""
    loop = _bridge.get()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        coroutine.close()
        raise RuntimeError("run_sync called from the bridge loop itself: await instead")
    return asyncio.run_coroutine_threadsafe(coroutine, loop).result()
