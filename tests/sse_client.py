"""Reading a live stream the way a browser's EventSource does, in the background."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.waiting import eventually


@dataclass(frozen=True)
class Event:
    name: str  # "vote_update", "poll_deleted", or "comment" for a `:` line
    id: int | None
    data: Any
    raw: str

    def counts(self) -> dict[int, int]:
        return {pair["vote_option_id"]: pair["vote_count"] for pair in self.data}


def parse_event(block: str) -> Event:
    """One event block (without its blank line) of a text/event-stream."""
    fields: dict[str, str] = {}
    comment = False
    for line in block.split("\n"):
        if line.startswith(":"):
            comment = True
            continue
        name, _, value = line.partition(": ")
        fields[name] = value
    if comment and not fields:
        return Event("comment", None, None, block)
    return Event(
        fields.get("event", "message"),
        int(fields["id"]) if "id" in fields else None,
        json.loads(fields["data"]),
        block,
    )


@dataclass(eq=False)
class LiveStream:
    """GET an SSE URL and collect its events until closed or ended by the server."""

    url: str
    cookies: dict[str, str] = field(default_factory=dict)
    status: int | None = None
    headers: httpx.Headers | None = None
    events: list[Event] = field(default_factory=list)
    ended: bool = False  # the server finished the response
    error: BaseException | None = None
    _task: asyncio.Task[None] | None = None

    async def open(self) -> LiveStream:
        """Start reading; returns once the response headers arrived."""
        opened = asyncio.Event()
        self._task = asyncio.create_task(self._read(opened))
        await asyncio.wait_for(opened.wait(), 30)
        if self.error is not None:
            raise self.error
        return self

    async def _read(self, opened: asyncio.Event) -> None:
        timeout = httpx.Timeout(10, read=None)
        try:
            async with (
                httpx.AsyncClient(cookies=self.cookies, timeout=timeout) as client,
                client.stream("GET", self.url) as response,
            ):
                self.status, self.headers = response.status_code, response.headers
                opened.set()
                buffer = ""
                async for text in response.aiter_text():
                    buffer += text
                    while "\n\n" in buffer:
                        block, buffer = buffer.split("\n\n", 1)
                        self.events.append(parse_event(block))
                self.ended = True
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.error = exc
        finally:
            opened.set()

    def updates(self) -> list[Event]:
        return [event for event in self.events if event.name == "vote_update"]

    def latest_counts(self) -> dict[int, int] | None:
        updates = self.updates()
        return updates[-1].counts() if updates else None

    async def wait_for(self, check: Callable[[LiveStream], bool], within: float = 30.0) -> bool:
        async def holds() -> bool:
            return check(self)

        return await eventually(holds, True, within)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
