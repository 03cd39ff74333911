"""The client's network address, as far as this deployment can trust it.

One rule for every transport (HTTP and WebSocket): the peer address, unless
TRUSTED_PROXY_HOPS proxies stand in front, in which case the X-Forwarded-For entry the
outermost trusted proxy added. Per-address limits key on `rate_limit_key`, which puts
an IPv6 client's whole /64 (what one host or site usually gets) into one bucket.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from django.conf import settings
from django.http import HttpRequest

UNKNOWN = "unknown"
IPV6_BUCKET_PREFIX = 64


def _normalized(value: str) -> str | None:
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address)


def client_address(request: HttpRequest) -> str:
    """The peer address, or the one TRUSTED_PROXY_HOPS proxies put into X-Forwarded-For."""
    # Django joins repeated X-Forwarded-For headers with "," in their order.
    return address_from(
        request.META.get("REMOTE_ADDR") or "", [request.headers.get("X-Forwarded-For", "")]
    )


def address_from(peer_address: str, forwarded_for: Iterable[str]) -> str:
    """The client address from the peer address and every X-Forwarded-For header's value,
    in the order they came (a request may carry several; they count as one list)."""
    peer = _normalized(peer_address) or UNKNOWN
    hops = settings.TRUSTED_PROXY_HOPS
    if hops <= 0:
        return peer
    forwarded = [part for value in forwarded_for for part in value.split(",") if part.strip()]
    # Each trusted proxy appends the address it saw; anything further left is the
    # client's own claim, so only the entry the outermost trusted proxy added counts.
    if len(forwarded) < hops:
        return peer
    return _normalized(forwarded[-hops]) or peer


def rate_limit_key(address: str) -> str:
    """The subject of per-address limits: the address, or an IPv6 address's /64 network.

    A single IPv6 host commonly holds a whole /64 and can use any address in it, so
    counting addresses one by one would give it 2**64 budgets.
    """
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        network = ipaddress.IPv6Network((parsed, IPV6_BUCKET_PREFIX), strict=False)
        return str(network)
    return str(parsed)
