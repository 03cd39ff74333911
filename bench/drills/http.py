"""A small keep-alive HTTP/1.1 client on raw asyncio sockets, bound to a chosen loopback
source address (so the server sees many clients), cheap enough for hundreds of users."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Answer:
    status: int  # 0: no answer (connection refused, reset or timed out)
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def retry_after(self) -> float:
        try:
            return float(self.headers.get("retry-after", "1"))
        except ValueError:
            return 1.0


NO_ANSWER = Answer(0, {}, b"")
# uvicorn closes idle keep-alive connections after 5 s; a request written just then would
# be lost without an answer, so a connection idle this long is replaced first.
IDLE_REUSE_SECONDS = 3.0


class HttpConnection:
    """One persistent connection of one user; reconnects on the next request after a
    failure. Requests on one connection are sequential, as a browser tab's would be."""

    def __init__(self, port: int, source: str = "127.0.0.1", timeout: float = 15.0) -> None:
        self.port = port
        self.source = source
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._used = 0.0

    async def request(
        self, method: str, path: str, body: object = None, cookie: str | None = None
    ) -> Answer:
        payload = b"" if body is None else json.dumps(body).encode()
        head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Accept: application/json"]
        if cookie:
            head.append(f"Cookie: {cookie}")
        if body is not None:
            head += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
        raw = ("\r\n".join(head) + "\r\n\r\n").encode() + payload
        if self._writer is not None and time.monotonic() - self._used > IDLE_REUSE_SECONDS:
            await self.close()  # the server may be closing it right now: start afresh
        try:
            async with asyncio.timeout(self.timeout):
                if self._writer is None:
                    self._reader, self._writer = await asyncio.open_connection(
                        "127.0.0.1", self.port, local_addr=(self.source, 0)
                    )
                assert self._reader is not None
                self._writer.write(raw)
                answer = await _read_answer(self._reader)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
            await self.close()
            return NO_ANSWER
        self._used = time.monotonic()
        if answer.headers.get("connection", "").lower() == "close":
            await self.close()
        return answer

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _read_answer(reader: asyncio.StreamReader) -> Answer:
    status_line = await reader.readline()
    if not status_line:
        raise asyncio.IncompleteReadError(b"", None)
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return Answer(status, headers, body)
