"""Ending live streams when the process shuts down.

Streams never end on their own, and ASGI servers wait for open responses before they
stop: uvicorn sends the lifespan shutdown event only after every connection closed, and
daphne has no lifespan at all. So the hubs close when the process receives SIGTERM or
SIGINT: the server's own handler is kept and called, and every stream then ends
cleanly, which lets the server's graceful shutdown finish. The lifespan shutdown event
closes them too, for servers that send it before draining.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

from realtime.hub import all_hubs

_lock = threading.Lock()
_installed = False

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def close_all_hubs() -> None:
    """Close every loop's hub from any thread (streams end, new ones are refused)."""
    for loop, hub in all_hubs():
        with contextlib.suppress(RuntimeError):  # that loop is closed
            loop.call_soon_threadsafe(hub.close)


def install_signal_handlers() -> None:
    """Chain SIGTERM and SIGINT so that they also close the hubs (once per process).

    Only a handler the server installed is chained: under the default action the
    process ends at once anyway. Signals can be handled only in the main thread.
    """
    global _installed
    if threading.current_thread() is not threading.main_thread():
        return
    with _lock:
        if _installed:
            return
        _installed = True
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(signum)
            if callable(previous):
                signal.signal(signum, _chained(previous))


def _chained(
    previous: Callable[[int, FrameType | None], Any],
) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        close_all_hubs()
        previous(signum, frame)

    return handler


async def lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI lifespan protocol: nothing to start; close the hubs on shutdown."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            install_signal_handlers()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            close_all_hubs()
            await asyncio.sleep(0)  # let the hubs of this loop close before answering
            await send({"type": "lifespan.shutdown.complete"})
            return
