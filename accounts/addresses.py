"""The client's network address, as far as this deployment can trust it."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest

UNKNOWN = "unknown"


def _normalized(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def client_address(request: HttpRequest) -> str:
    """The peer address, or the one TRUSTED_PROXY_HOPS proxies put into X-Forwarded-For."""
    return address_from(
        request.META.get("REMOTE_ADDR") or "", request.headers.get("X-Forwarded-For", "")
    )


def address_from(peer_address: str, forwarded_for: str) -> str:
    """`client_address` from the raw peer address and X-Forwarded-For value (e.g. WebSocket)."""
    peer = _normalized(peer_address) or UNKNOWN
    hops = settings.TRUSTED_PROXY_HOPS
    if hops <= 0:
        return peer
    forwarded = [part for part in forwarded_for.split(",") if part]
    # Each trusted proxy appends the address it saw; anything further left is the
    # client's own claim, so only the entry the outermost trusted proxy added counts.
    if len(forwarded) < hops:
        return peer
    return _normalized(forwarded[-hops]) or peer
