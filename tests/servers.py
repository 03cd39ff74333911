"""Real ASGI servers on 127.0.0.1 for end-to-end tests: uvicorn (production) and daphne.

They run the project against the test stack (DJANGO_SETTINGS_MODULE=tests.settings, and
this run's environment, so the same database, Valkey and vote topic), with the command
lines of stack/processes.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from stack.processes import (
    WebServer,
    free_port,
    runserver_command,
    start_web_server,
    uvicorn_command,
)

Kind = Literal["uvicorn", "daphne"]
Server = WebServer


def start_server(
    kind: Kind, log: Path, workers: int = 1, env: dict[str, str] | None = None
) -> Server:
    """Start a server and wait until it answers /api/health."""
    port = free_port()
    command = uvicorn_command(port, workers) if kind == "uvicorn" else runserver_command(port)
    return start_web_server(
        command, port, log, {"DJANGO_SETTINGS_MODULE": "tests.settings", **(env or {})}
    )
