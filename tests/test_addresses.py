"""The client address behind a request, with and without trusted proxies."""

from __future__ import annotations

import pytest
from django.test import RequestFactory, override_settings

from accounts.addresses import client_address, rate_limit_key


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


def test_websocket_and_http_read_repeated_forwarding_headers_alike() -> None:
    """Issue 12, item 8: one rule for both transports, all X-Forwarded-For headers."""
    from realtime.websocket import scope_address

    headers = [
        (b"x-forwarded-for", b"6.6.6.6, 203.0.113.9"),
        (b"x-forwarded-for", b"198.51.100.7"),
    ]
    scope = {"client": ("192.0.2.1", 5000), "headers": headers}
    request = RequestFactory().get("/", REMOTE_ADDR="192.0.2.1")
    # Django joins repeated headers with "," (as an ASGI server hands them over).
    request.META["HTTP_X_FORWARDED_FOR"] = "6.6.6.6, 203.0.113.9,198.51.100.7"
    for hops, expected in ((1, "198.51.100.7"), (2, "203.0.113.9"), (3, "6.6.6.6")):
        with override_settings(TRUSTED_PROXY_HOPS=hops):
            assert scope_address(scope) == client_address(request) == expected


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("unknown", "unknown"),
    ],
)
def test_per_address_limits_key_ipv6_clients_by_their_64(address: str, key: str) -> None:
    assert rate_limit_key(address) == key


def test_ipv4_mapped_peers_are_their_ipv4_address() -> None:
    request = RequestFactory().get("/", REMOTE_ADDR="::ffff:192.0.2.1")
    assert client_address(request) == "192.0.2.1"
