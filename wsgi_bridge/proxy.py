"""Honouring ``X-Forwarded-*`` headers from trusted reverse proxies (no I/O).

The rule follows werkzeug's ``ProxyFix`` and uvicorn's ``ProxyHeadersMiddleware``:
the headers are read only when the TCP peer is a trusted proxy; for
``X-Forwarded-For`` the client is the rightmost address that is *not* a trusted
proxy (every proxy appends the address it saw, so anything left of the first
untrusted hop may be forged by the client).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

_HOST_RE = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?\Z|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?\Z")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """A set of IP networks whose forwarding headers are believed.

    :param proxies: iterable of IP addresses or CIDR strings, e.g.
        ``["127.0.0.1", "10.0.0.0/8", "::1"]``, or one comma-separated string
        (``"127.0.0.1, 10.0.0.0/8"``); blank entries are ignored.
    :raises ValueError: if an entry is not an address or network.
    """

    def __init__(self, proxies: Iterable[str] | str) -> None:
        if isinstance(proxies, str):
            proxies = proxies.split(",")
        self.networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(p.strip(), strict=False) for p in proxies if p.strip()
        )

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, str) or not self.networks:
            return False
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            return False
        return any(ip in net for net in self.networks)


@dataclass(slots=True)
class Forwarded:
    """Result of :func:`resolve_forwarded`; ``None`` fields mean "keep the original"."""

    remote_addr: str | None = None
    scheme: str | None = None
    host: str | None = None


def _last(value: str | None) -> str | None:
    if not value:
        return None
    return value.split(",")[-1].strip() or None


def resolve_forwarded(
    peer: str,
    trusted: TrustedProxies,
    x_forwarded_for: str | None,
    x_forwarded_proto: str | None,
    x_forwarded_host: str | None,
) -> Forwarded:
    """Compute the client address, scheme and host a trusted proxy reported.

    :param peer: IP address of the TCP peer (the nearest proxy).
    :param trusted: the trusted proxy networks.
    :param x_forwarded_for: the joined ``X-Forwarded-For`` value, e.g. ``"1.2.3.4, 10.0.0.2"``.
    :param x_forwarded_proto: ``X-Forwarded-Proto``; only ``http``/``https`` accepted
        (rightmost value).
    :param x_forwarded_host: ``X-Forwarded-Host``; rightmost value, must look like
        ``host[:port]``.
    :returns: a :class:`Forwarded`; all ``None`` when ``peer`` is not trusted.
    """
    result = Forwarded()
    if peer not in trusted:
        return result
    if x_forwarded_for:
        hops = [h.strip() for h in x_forwarded_for.split(",") if h.strip()]
        client = None
        for hop in reversed(hops):
            client = hop
            if hop not in trusted:
                break
        if client is not None:
            try:
                ipaddress.ip_address(client)
            except ValueError:
                client = None
        result.remote_addr = client
    proto = _last(x_forwarded_proto)
    if proto is not None and proto.lower() in ("http", "https"):
        result.scheme = proto.lower()
    host = _last(x_forwarded_host)
    if host is not None and _HOST_RE.match(host):
        result.host = host
    return result
