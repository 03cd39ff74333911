"""Issue 12, item 11: the app server closes connections whose request headers or body do
not arrive in time (feedapp.server.SlowClientGuard, under uvicorn as production runs it)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest

from tests.polls import make_poll
from tests.servers import Server, start_server
from tests.users import make_user

TIMEOUT = 1.0
# Generous: the server closes after TIMEOUT; the test only bounds how long it waits.
GIVE_UP_AFTER = 20.0


@pytest.fixture(scope="module")
def guarded_server(tmp_path_factory) -> Iterator[Server]:
    env = {"HTTP_HEADER_TIMEOUT_SECONDS": str(TIMEOUT), "HTTP_BODY_TIMEOUT_SECONDS": str(TIMEOUT)}
    server = start_server("uvicorn", tmp_path_factory.mktemp("slow") / "server.log", env=env)
    yield server
    server.stop()


def _connect(server: Server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.settimeout(GIVE_UP_AFTER)
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes; fails if it keeps the connection."""
    received = b""
    deadline = time.monotonic() + GIVE_UP_AFTER
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            break
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk
    raise AssertionError(f"the server kept the connection open; got {received!r}")


def _read_response(sock: socket.socket) -> bytes:
    """One whole response with a Content-Length (headers and body may come apart)."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(4096)
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(4096)
    return head + b"\r\n\r\n" + body


def test_a_connection_that_sends_nothing_is_closed(guarded_server: Server) -> None:
    with _connect(guarded_server) as sock:
        assert _read_until_closed(sock).startswith(b"HTTP/1.1 408 ")


def test_slow_request_headers_are_cut_off(guarded_server: Server) -> None:
    with _connect(guarded_server) as sock:
        sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        time.sleep(TIMEOUT / 3)
        sock.sendall(b"X-Slow: 1\r\n")  # trickling bytes do not extend the deadline
        answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b'"detail"' in answer


def test_a_slow_request_body_is_cut_off(guarded_server: Server) -> None:
    with _connect(guarded_server) as sock:
        sock.sendall(
            b"POST /api/user/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"username"'
        )
        _read_until_closed(sock)


def test_a_keep_alive_connection_serves_requests_in_time(guarded_server: Server) -> None:
    with _connect(guarded_server) as sock:
        for _ in range(2):
            sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = _read_response(sock)
            assert answer.startswith(b"HTTP/1.1 200 "), answer
            time.sleep(TIMEOUT * 1.5)  # idle between requests: not a slow request


async def test_a_live_stream_outlasts_the_timeouts(guarded_server: Server) -> None:
    poll = await make_poll(await make_user())
    with _connect(guarded_server) as sock:
        sock.sendall(f"GET /api/vote/stream/{poll.id} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        received = b""
        while b"event: vote_update" not in received:
            chunk = sock.recv(4096)
            assert chunk, received
            received += chunk
        await asyncio.sleep(TIMEOUT * 2.5)
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):  # nothing to read, and not closed
            sock.recv(4096)
