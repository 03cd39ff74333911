"""The client address behind a request, with and without trusted proxies."""

from __future__ import annotations

import pytest
from django.test import RequestFactory, override_settings

from accounts.addresses import client_address


@pytest.mark.parametrize(
    ("hops", "forwarded", "expected"),
    [
        (0, "203.0.113.9", "192.0.2.1"),
        (1, None, "192.0.2.1"),
        (1, "203.0.113.9", "203.0.113.9"),
        (1, "6.6.6.6, 203.0.113.9", "203.0.113.9"),
        (2, "6.6.6.6, 203.0.113.9, 198.51.100.7", "203.0.113.9"),
        (2, "198.51.100.7", "192.0.2.1"),
        (1, "not-an-address", "192.0.2.1"),
        (1, " 2001:DB8::1 ", "2001:db8::1"),
    ],
)
def test_client_address_trusts_only_configured_proxies(
    hops: int, forwarded: str | None, expected: str
) -> None:
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    request = RequestFactory().get("/", REMOTE_ADDR="192.0.2.1", headers=headers)
    with override_settings(TRUSTED_PROXY_HOPS=hops):
        assert client_address(request) == expected
