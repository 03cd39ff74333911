"""The API's requests are served on the event loop: no thread, whatever the answer."""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.core import signals

from tests.asgi_client import asgi_request

JSON = [(b"content-type", b"application/json")]


@pytest.fixture
def thread_hops(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every callable handed to a thread pool (asgiref's sync_to_async uses one)."""
    handed: list[str] = []
    submit = concurrent.futures.ThreadPoolExecutor.submit

    def counting_submit(self: Any, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        handed.append(repr(fn))
        return submit(self, fn, *args, **kwargs)

    monkeypatch.setattr(concurrent.futures.ThreadPoolExecutor, "submit", counting_submit)
    yield handed


@pytest.mark.parametrize(
    ("method", "path", "chunks", "status"),
    [
        ("GET", "/api/health", None, 200),
        ("GET", "/api/poll/all", None, 200),
        ("GET", "/api/vote/999999999", None, 404),  # an error answer is logged too
        ("POST", "/api/vote/submit", [b'{"poll_id": 1,', b' "vote_option_id": 1}'], 401),
        ("POST", "/api/user/login", [b"{not json"], 400),
    ],
)
async def test_api_requests_hand_nothing_to_a_thread(
    thread_hops: list[str], method: str, path: str, chunks: list[bytes] | None, status: int
) -> None:
    # Once, so that pools, clients and caches made on first use are there.
    await asgi_request(method, path, chunks, JSON)
    thread_hops.clear()
    threads = threading.active_count()

    answered, _ = await asgi_request(method, path, chunks, JSON)

    assert answered == status
    assert thread_hops == []
    assert threading.active_count() == threads


async def test_request_signals_are_still_sent() -> None:
    seen: list[str] = []

    def started(sender: object, **kwargs: object) -> None:
        seen.append("started")

    def finished(sender: object, **kwargs: object) -> None:
        seen.append("finished")

    signals.request_started.connect(started)
    signals.request_finished.connect(finished)
    try:
        status, _ = await asgi_request("GET", "/api/health")
    finally:
        signals.request_started.disconnect(started)
        signals.request_finished.disconnect(finished)
    assert status == 200
    assert seen == ["started", "finished"]


async def test_other_paths_keep_djangos_handling(thread_hops: list[str]) -> None:
    # The admin's views are synchronous: Django runs them on a thread, as before.
    status, _ = await asgi_request("GET", "/admin/login/")
    assert status == 200
    assert thread_hops
