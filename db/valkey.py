"""The Valkey client: one per event loop (asyncio) and one per process (sync)."""

from __future__ import annotations

import asyncio
import threading
import weakref

import valkey
import valkey.asyncio as avalkey
from django.conf import settings

_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, avalkey.Valkey] = (
    weakref.WeakKeyDictionary()
)
_sync_client: valkey.Valkey | None = None
_sync_lock = threading.Lock()


def _options() -> dict[str, object]:
    return {
        "socket_timeout": settings.VALKEY_TIMEOUT_SECONDS,
        "socket_connect_timeout": settings.VALKEY_TIMEOUT_SECONDS,
        "health_check_interval": 30,
        # One immediate retry replaces a connection that died (e.g. Valkey restarted).
        "retry_on_error": [valkey.exceptions.ConnectionError],
    }


def get_async_valkey() -> avalkey.Valkey:
    """The running loop's client (connections are made lazily by its pool)."""
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        client = avalkey.Valkey.from_url(settings.VALKEY_URL, **_options())  # type: ignore[arg-type]
        _async_clients[loop] = client
    return client


def get_sync_valkey() -> valkey.Valkey:
    """The process's synchronous client (consumer, management commands, admin)."""
    global _sync_client
    with _sync_lock:
        if _sync_client is None:
            _sync_client = valkey.Valkey.from_url(settings.VALKEY_URL, **_options())
        return _sync_client


async def close_async_valkey() -> None:
    client = _async_clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()
