"""The admin on a real server across a PostgreSQL restart: the first request is served.

Django's connection comes from a pool that keeps it between requests (settings:
CONN_HEALTH_CHECKS with the pool); a restart kills the pooled connection, and the pool's
check on checkout must replace it before the admin uses it.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import psycopg
import pytest
from django.conf import settings

from tests.admin_client import make_admin, sign_in_over_http
from tests.restarts import drop_dead_connections, restart_postgres
from tests.servers import Server, start_server

USERS = "/admin/accounts/user/"


@pytest.fixture
def uvicorn_server(tmp_path) -> Iterator[Server]:
    server = start_server("uvicorn", tmp_path / "server.log")
    yield server
    server.stop()


def admin_connections() -> int:
    """Connections of Django's pools (by their application name) open on PostgreSQL now."""
    with psycopg.connect(settings.DATABASE_URL, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'feedapp-admin'"
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.stack_control
async def test_the_admins_first_request_after_a_postgresql_restart_is_served(
    uvicorn_server,
) -> None:
    staff = await make_admin()
    # This process's own pooled connections (its test client's, an earlier django_db
    # test's) are counted too; they stay as they are during the test.
    own = admin_connections()
    async with httpx.AsyncClient(base_url=uvicorn_server.url, timeout=30) as browser:
        await sign_in_over_http(browser, staff.user.username, staff.password)
        for _ in range(5):
            page = await browser.get(USERS)
            assert page.status_code == 200, uvicorn_server.log_tail()
        # The server's pool kept its connection between requests: a restart breaks it.
        assert admin_connections() >= own + 1

        restart_postgres()
        try:
            first = await browser.get(USERS)
            assert first.status_code == 200, uvicorn_server.log_tail()
            assert staff.user.username in first.text
            assert (await browser.get(USERS)).status_code == 200
        finally:
            await drop_dead_connections()
    assert "AdminShutdown" not in uvicorn_server.log_tail(200)
