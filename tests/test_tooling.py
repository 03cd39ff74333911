"""`manage.py` and `make migrate` find the same local stack as `python -m stack`: the profile
named by FEEDAPP_STACK_PROFILE, its ports shifted by FEEDAPP_STACK_PORT_OFFSET."""

from __future__ import annotations

import os
import subprocess
import sys

from stack.profiles import PORT_OFFSET, PROJECT_ROOT

SHELL = [sys.executable, "manage.py", "shell", "--no-imports", "-c"]
SETTINGS_PRINTER = (
    "from django.conf import settings; "
    "print(settings.DATABASE_URL); print(settings.VALKEY_URL); "
    "print(','.join(settings.KAFKA_BOOTSTRAP_SERVERS))"
)


def _clean_environment(**overrides: str) -> dict[str, str]:
    """This run's environment without the test settings' service URLs (what a shell has)."""
    dropped = {
        "DATABASE_URL",
        "VALKEY_URL",
        "KAFKA_BOOTSTRAP_SERVERS",
        "DJANGO_SETTINGS_MODULE",
        "FEEDAPP_STACK_PROFILE",
        "FEEDAPP_STACK_PORT_OFFSET",
    }
    env = {key: value for key, value in os.environ.items() if key not in dropped}
    return {**env, "FEEDAPP_ENV_FILE": "/nonexistent", **overrides}


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=180
    )


def test_manage_py_uses_the_profile_and_port_offset_of_the_stack() -> None:
    env = _clean_environment(FEEDAPP_STACK_PROFILE="bench", FEEDAPP_STACK_PORT_OFFSET="7")
    result = _run([*SHELL, SETTINGS_PRINTER], env)
    assert result.returncode == 0, result.stderr
    # The bench profile's ports (15452, 63810, 19292) plus 7, written out: not computed by
    # the code under test.
    assert result.stdout.split() == [
        "postgres://feedapp@127.0.0.1:15459/feedapp_bench",
        "valkey://127.0.0.1:63817/0",
        "127.0.0.1:19299",
    ]


def test_manage_py_defaults_to_the_dev_profile() -> None:
    result = _run([*SHELL, SETTINGS_PRINTER], _clean_environment())
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "postgres://feedapp@127.0.0.1:15432/feedapp"


def test_explicit_settings_win_over_the_stack() -> None:
    env = _clean_environment(
        FEEDAPP_STACK_PORT_OFFSET="7", DATABASE_URL="postgres://someone@db.example:5432/x"
    )
    result = _run([*SHELL, SETTINGS_PRINTER], env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "postgres://someone@db.example:5432/x"


def test_production_requires_the_service_addresses() -> None:
    env = _clean_environment(
        FEEDAPP_MODE="production",
        FEEDAPP_ALLOWED_ORIGINS="https://feedapp.example",
        DJANGO_SECRET_KEY="x" * 50,
        JWT_SECRET_KEY="y" * 50,
    )
    result = _run([sys.executable, "manage.py", "check"], env)
    assert result.returncode != 0
    assert "DATABASE_URL must be set when FEEDAPP_MODE=production" in result.stderr


def test_make_migrate_migrates_the_database_of_the_chosen_profile() -> None:
    """`make migrate PROFILE=test` reaches this run's test stack (at this run's port offset):
    it finds every service already running (another profile's or offset's would be started)
    and dbmate finds the test database migrated."""
    env = _clean_environment(FEEDAPP_STACK_PORT_OFFSET=str(PORT_OFFSET))
    result = _run(["make", "--no-print-directory", "migrate", "PROFILE=test"], env)
    assert result.returncode == 0, result.stdout + result.stderr
    for service in ("postgres", "valkey", "kafka"):
        assert f"{service:9} already running" in result.stdout, result.stdout
    status = _run(
        [sys.executable, "manage.py", "dbmate", "status"],
        {**env, "FEEDAPP_STACK_PROFILE": "test"},
    )
    assert status.returncode == 0, status.stdout + status.stderr
    assert "Pending: 0" in status.stdout
    migrations = sorted((PROJECT_ROOT / "db" / "migrations").glob("*.sql"))
    assert f"Applied: {len(migrations)}" in status.stdout
