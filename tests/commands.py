"""Running `manage.py` commands as a separate process against the test stack."""

from __future__ import annotations

import asyncio
import os
import sys

from stack.profiles import PROJECT_ROOT


async def manage(*args: str, **env: str) -> tuple[int, str]:
    """Run `manage.py` with the test settings (and `env`); its exit status and its output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(PROJECT_ROOT / "manage.py"),
        *args,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", **env},
        cwd=PROJECT_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=180)
    return process.returncode or 0, output.decode(errors="replace")
