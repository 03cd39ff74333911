"""The Valkey client, one per event loop (asyncio) and one per process (sync), and the
project's Lua scripts (`db/lua/*.lua`, beside the SQL)."""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

import valkey
import valkey.asyncio as avalkey
from django.conf import settings
from valkey.commands.core import AsyncScript, Script

from db.singletons import PerLoop, PerProcess

LUA_DIR = Path(__file__).resolve().parent / "lua"


def _options() -> dict[str, Any]:
    return {
        "socket_timeout": settings.VALKEY_TIMEOUT_SECONDS,
        "socket_connect_timeout": settings.VALKEY_TIMEOUT_SECONDS,
        "health_check_interval": 30,
        # One immediate retry replaces a connection that died (e.g. Valkey restarted).
        "retry_on_error": [valkey.exceptions.ConnectionError],
    }


# Connections are made lazily by each client's pool.
_async_clients: PerLoop[avalkey.Valkey] = PerLoop(
    lambda: avalkey.Valkey.from_url(settings.VALKEY_URL, **_options())
)
_sync_client: PerProcess[valkey.Valkey] = PerProcess(
    lambda: valkey.Valkey.from_url(settings.VALKEY_URL, **_options()), valkey.Valkey.close
)


def get_async_valkey() -> avalkey.Valkey:
    """The running loop's client."""
    return _async_clients.get()


def get_sync_valkey() -> valkey.Valkey:
    """The process's synchronous client (consumer, management commands, admin)."""
    return _sync_client.get()


async def close_async_valkey() -> None:
    """Close the running loop's client, if any."""
    client = _async_clients.pop()
    if client is not None:
        await client.aclose()


def close_sync_valkey() -> None:
    _sync_client.close()


class LuaScript:
    """A script of `db/lua/`, read once and run by its SHA1 (loaded on the server on first
    use). valkey-py binds a script object to one client, so one is made per client."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.source = (LUA_DIR / f"{name}.lua").read_text(encoding="utf-8")
        self._sync: weakref.WeakKeyDictionary[valkey.Valkey, Script] = weakref.WeakKeyDictionary()
        self._async: weakref.WeakKeyDictionary[avalkey.Valkey, AsyncScript] = (
            weakref.WeakKeyDictionary()
        )

    def on(self, client: valkey.Valkey) -> Script:
        """The script bound to a synchronous client (callable with `client=pipeline`)."""
        script = self._sync.get(client)
        if script is None:
            script = self._sync[client] = client.register_script(self.source)
        return script

    def on_async(self, client: avalkey.Valkey) -> AsyncScript:
        """The script bound to an asyncio client (callable with `client=pipeline`)."""
        script = self._async.get(client)
        if script is None:
            script = self._async[client] = client.register_script(self.source)
        return script
