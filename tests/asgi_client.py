"""Driving the ASGI application in this process like a server does, one HTTP stream at a time.

Unlike Django's test client this goes through the whole ASGI path, and a client that
leaves is an `http.disconnect`, which makes Django cancel the response as in production.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from asgiref.testing import ApplicationCommunicator

from accounts.auth import COOKIE_NAME
from accounts.rows import UserRow
from accounts.tokens import issue_token
from feedapp.asgi import application


@dataclass(eq=False)
class AsgiStream:
    path: str
    user: UserRow | None = None
    address: str = "127.0.0.1"
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    status: int = 0
    response_headers: dict[str, str] = field(default_factory=dict)
    finished: bool = False
    _communicator: ApplicationCommunicator | None = None

    async def open(self, within: float = 10) -> AsgiStream:
        """Send the request; returns once the response started."""
        headers = [(b"host", b"127.0.0.1"), *self.headers]
        if self.user is not None:
            cookie = f"{COOKIE_NAME}={issue_token(self.user.id)}"
            headers.append((b"cookie", cookie.encode()))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": self.path,
            "raw_path": self.path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": (self.address, 40000),
            "server": ("127.0.0.1", 80),
        }
        self._communicator = ApplicationCommunicator(application, scope)
        await self._communicator.send_input({"type": "http.request", "body": b""})
        start = await self._communicator.receive_output(within)
        assert start["type"] == "http.response.start", start
        self.status = start["status"]
        self.response_headers = {
            bytes(name).decode().lower(): bytes(value).decode() for name, value in start["headers"]
        }
        return self

    async def chunk(self, within: float = 10) -> bytes:
        """The next piece of the body; b"" once the response finished."""
        assert self._communicator is not None
        while not self.finished:
            message = await self._communicator.receive_output(within)
            assert message["type"] == "http.response.body", message
            if not message.get("more_body", False):
                self.finished = True
            if message.get("body"):
                return bytes(message["body"])
        return b""

    async def body(self, within: float = 10) -> bytes:
        """The whole (finite) body."""
        parts = []
        while not self.finished:
            parts.append(await self.chunk(within))
        return b"".join(parts)

    async def disconnect(self, within: float = 10) -> None:
        """Leave as a client does; returns once the application finished."""
        if self._communicator is None:
            return
        await self._communicator.send_input({"type": "http.disconnect"})
        await self._communicator.wait(within)
        self._communicator = None


async def asgi_request(
    method: str,
    path: str,
    chunks: list[bytes] | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
    root_path: str = "",
) -> tuple[int, bytes]:
    """One request straight through the ASGI app: its status and body.

    The body goes as `chunks` without a Content-Length (as a chunked upload would);
    `root_path` mounts the app below a prefix, as a server's --root-path does.
    """
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": root_path + path,
        "raw_path": (root_path + path).encode(),
        "root_path": root_path,
        "query_string": b"",
        "headers": [(b"host", b"localhost"), *(headers or [])],
        "client": ("10.255.0.1", 50000),
        "server": ("localhost", 8000),
    }
    parts = chunks or [b""]
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(parts) - 1}
        for i, chunk in enumerate(parts)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        # The client stays connected; waiting here must not keep the answer back.
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await application(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], body
