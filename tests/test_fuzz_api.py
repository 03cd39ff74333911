"""Fuzzing the API from its own OpenAPI schema with schemathesis, against a real server.

Every operation, anonymous and signed in, gets a bounded number of generated requests
(valid and invalid); each answer must be no 5xx, have a status the schema documents for
that operation, the documented content type and a body matching the documented schema.
The live stream is fuzzed on its own (a 200 never ends): its status, content type and
first event are checked. Bounded: about 1,500 requests in all, well under 3 minutes.
Seeded, so a failure can be reproduced with the command the report prints.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode, checks

from accounts.auth import COOKIE_NAME
from tests.polls import make_poll
from tests.servers import Server, start_server
from tests.users import make_user

CHECK_NAMES = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
]
CHECKS = ",".join(CHECK_NAMES)
MAX_EXAMPLES = 15
SEED = "20261212"
STREAM = "/api/vote/stream/{poll_id}"
# Signed in, these would end the session the rest of the run uses (they are fuzzed
# anonymously).
ENDS_THE_SESSION = ["/api/user/logout", "/api/user/logout-everywhere"]
RUN_TIMEOUT_SECONDS = 150
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    server = start_server("uvicorn", tmp_path_factory.mktemp("fuzz") / "server.log")
    yield server
    server.stop()


def schemathesis_run(server: Server, workdir: Path, *options: str) -> str:
    """Run the schemathesis CLI against the server; its report (asserted clean)."""
    command = [
        str(SCHEMATHESIS), "run", f"{server.url}/api/openapi.json",
        "--checks", CHECKS, "--max-examples", str(MAX_EXAMPLES), "--seed", SEED,
        "--phases", "examples,coverage,fuzzing", "--workers", "2",
        "--request-timeout", "10", "--exclude-path", STREAM, *options,
    ]  # fmt: skip
    env = {**os.environ, "NO_COLOR": "1"}
    result = subprocess.run(
        command,
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
    )
    report = result.stdout + result.stderr
    print(report)  # the numbers, for the record (pytest -s)
    assert result.returncode == 0, f"{report[-8000:]}\n--- server log:\n{server.log_tail(60)}"
    generated = re.search(r"(\d+) generated, (\d+) passed", report)
    assert generated is not None, report[-2000:]
    assert generated.group(1) == generated.group(2)
    assert int(generated.group(1)) >= 200  # a real run, not an empty one
    return report


def test_fuzz_every_operation_anonymously(server: Server, tmp_path: Path) -> None:
    schemathesis_run(server, tmp_path)


def test_fuzz_every_operation_signed_in(server: Server, tmp_path: Path) -> None:
    name = f"fuzz_{uuid.uuid4().hex[:12]}"
    identity = {"username": name, "email": f"{name}@example.com", "password": "fuzz-password"}
    response = httpx.post(f"{server.url}/api/user/register", json=identity)
    assert response.status_code == 201
    token = response.cookies[COOKIE_NAME]
    excluded = [part for path in ENDS_THE_SESSION for part in ("--exclude-path", path)]
    report = schemathesis_run(
        server, tmp_path, "--header", f"Cookie: {COOKIE_NAME}={token}", *excluded
    )
    # Signed in, the routes that need a session were reached, not only refused with 401
    # (403 is fine: other tests' polls are visible but not this user's to change).
    assert "401 Unauthorized (" not in report
    # What the schema allows, the server accepts (no "mostly rejected" operation).
    assert "Schema validation mismatch" not in report
    assert httpx.get(f"{server.url}/api/user/me", cookies={COOKIE_NAME: token}).status_code == 200


# --- The live stream ------------------------------------------------------------------------


def read_stream_head(client: httpx.Client, url: str) -> httpx.Response:
    """The answer with its body, or for a stream its first event only (then it is left)."""
    with client.stream("GET", url) as response:
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            first = next(response.iter_raw())
            head = httpx.Response(
                response.status_code,
                headers=response.headers,
                content=first,
                request=response.request,
            )
            head.elapsed = datetime.timedelta(0)  # the stream has not ended; not measured
            return head
        response.read()
    return response


async def test_fuzz_the_stream_route(server: Server) -> None:
    poll = await make_poll(await make_user(), options=2)
    schema = schemathesis.openapi.from_url(f"{server.url}/api/openapi.json")
    operation = schema[STREAM]["GET"]
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )
    seen: dict[int, int] = {}

    @settings(
        max_examples=150,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases, existing=st.booleans())
    def check(case: schemathesis.Case, existing: bool) -> None:
        if existing and case.meta is not None and case.meta.generation.mode.is_positive:
            case.path_parameters = {"poll_id": poll.id}
        url = f"{server.url}{case.formatted_path}"
        with httpx.Client(timeout=10) as client:
            response = read_stream_head(client, url)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        case.validate_response(response, checks=[getattr(checks, name) for name in CHECK_NAMES])
        if response.status_code == 200:
            assert response.content.startswith(b"event: vote_update\nid: ")

    # Hypothesis runs synchronously (in a thread, off this loop); the server is another
    # process.
    await asyncio.to_thread(check)
    assert seen.get(200, 0) > 0 and seen.get(404, 0) > 0, seen
    assert not any(status >= 500 for status in seen), seen
