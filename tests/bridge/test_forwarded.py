"""``HTTPServer(trusted_proxies=...)``: X-Forwarded-* applied once, before routing.

Every kind of mount sees the rewritten client address, scheme and host, Tornado's
own ``WSGIContainer`` included: the server does it, not the container (which is
given no ``trusted_proxies`` here).
"""

from __future__ import annotations

import http.client

import pytest
import tornado.web

from tests.bridge import apps
from wsgi_bridge import HTTPServer
from wsgi_bridge.testing import KINDS, BridgeServer

FORWARDED = {
    "X-Forwarded-For": "6.6.6.6, 198.51.100.4",  # the first hop is the client's own claim
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "shop.example:8443",
}


def environ_seen(server: BridgeServer, headers: dict[str, str]) -> dict[str, str]:
    """GET /x twice on one connection: the first with ``headers``, the second without."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        seen = []
        for extra in (headers, {}):
            connection.request("GET", "/x", headers=extra)
            body = connection.getresponse().read().decode()
            pairs = (line.split("=", 1) for line in body.splitlines())
            seen.append({key: value.strip("'") for key, value in pairs})
        first, second = seen
        assert second["REMOTE_ADDR"] == "127.0.0.1"  # nothing leaks to the next request
        assert second["wsgi.url_scheme"] == "http"
        return first
    finally:
        connection.close()


@pytest.mark.parametrize("kind", KINDS)
def test_a_trusted_proxys_headers_reach_every_mount(kind: str) -> None:
    server_kwargs = {"trusted_proxies": "10.0.0.0/8, 127.0.0.1"}
    with BridgeServer(apps.echo_environ, kind=kind, server_kwargs=server_kwargs) as server:
        environ = environ_seen(server, FORWARDED)
    assert environ["REMOTE_ADDR"] == "198.51.100.4"
    assert environ["wsgi.url_scheme"] == "https"
    assert environ["HTTP_HOST"] == "shop.example:8443"


@pytest.mark.parametrize("kind", KINDS)
def test_an_untrusted_peers_headers_are_ignored(kind: str) -> None:
    server_kwargs = {"trusted_proxies": ["10.0.0.0/8"]}
    with BridgeServer(apps.echo_environ, kind=kind, server_kwargs=server_kwargs) as server:
        environ = environ_seen(server, FORWARDED)
    assert environ["REMOTE_ADDR"] == "127.0.0.1"
    assert environ["wsgi.url_scheme"] == "http"
    assert environ["HTTP_HOST"] == f"127.0.0.1:{server.port}"


def test_a_bad_trusted_proxy_entry_is_refused() -> None:
    with pytest.raises(ValueError, match="not-an-address"):
        HTTPServer(tornado.web.Application(), trusted_proxies="not-an-address")
