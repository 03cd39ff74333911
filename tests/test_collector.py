"""The web process's garbage collector settings (feedapp/collector.py), as the ASGI entry
point applies them in a process of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from stack.profiles import PROJECT_ROOT

PROBE = (
    "import gc, json, feedapp.asgi; "
    "print(json.dumps([list(gc.get_threshold()), gc.get_freeze_count()]))"
)


def load_asgi_app(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=PROJECT_ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_web_process_freezes_start_up_and_uses_the_configured_thresholds() -> None:
    loaded = load_asgi_app(GC_THRESHOLDS="12345,6,7")
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    thresholds, frozen = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert thresholds == [12345, 6, 7]
    # Django, the project and their libraries: far more than any short script makes.
    assert frozen > 50_000


def test_the_default_thresholds_keep_young_collections_rare() -> None:
    loaded = load_asgi_app()
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    thresholds, _ = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert thresholds == [50_000, 20, 100]


def test_bad_thresholds_are_refused_with_a_clear_error() -> None:
    loaded = load_asgi_app(GC_THRESHOLDS="700,10")
    assert loaded.returncode != 0
    assert "GC_THRESHOLDS: three positive integers" in loaded.stderr
