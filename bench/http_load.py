"""A minimal keep-alive HTTP/1.1 load client on raw asyncio sockets (cheap on 2 cores)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    seconds: float = 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else 0.0

    def summary(self) -> str:
        rate = len(self.latencies) / self.seconds if self.seconds else 0.0
        return (
            f"{len(self.latencies)} requests in {self.seconds:.1f} s = {rate:,.0f} req/s; "
            f"p50 {self.percentile(50) * 1000:.1f} ms, p99 {self.percentile(99) * 1000:.1f} ms; "
            f"statuses {dict(sorted(self.statuses.items()))}"
        )


async def _read_response(reader: asyncio.StreamReader) -> int:
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


async def run_load(
    port: int, make_request: Callable[[int], bytes], clients: int, seconds: float
) -> LoadResult:
    """`clients` connections each sending make_request(i) back to back for `seconds`."""
    result = LoadResult()
    deadline = time.perf_counter() + seconds

    async def one_client(number: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sent = 0
        try:
            while time.perf_counter() < deadline:
                request = make_request(number * 1_000_000 + sent)
                began = time.perf_counter()
                writer.write(request)
                status = await _read_response(reader)
                result.latencies.append(time.perf_counter() - began)
                result.statuses[status] += 1
                sent += 1
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(one_client(n) for n in range(clients)))
    result.seconds = time.perf_counter() - began
    return result
