"""``HTTPServer(trusted_proxies=...)``: X-Forwarded-* applied once, before routing.

Every kind of mount sees the rewritten client address, scheme and host, Tornado's
own ``WSGIContainer`` included: the server does it, not the container (which is
given no ``trusted_proxies`` here).
"""

from __future__ import annotations

import http.client
import socket
from pathlib import Path

import pytest
import tornado.web
from tornado.netutil import bind_unix_socket

from tests.bridge import apps
from wsgi_bridge import HTTPServer
from wsgi_bridge.testing import KINDS, BridgeServer, read_until_close

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


@pytest.mark.parametrize("kind", KINDS)
def test_a_request_body_passes_through_a_trusted_proxys_rewrite(kind: str) -> None:
    server_kwargs = {"trusted_proxies": "127.0.0.1"}
    with BridgeServer(apps.read_body, kind=kind, server_kwargs=server_kwargs) as server:
        status, _, body = server.request(
            "POST", "/x", body=b"hello body", headers=FORWARDED | {"Content-Length": "10"}
        )
    assert status == 200
    assert body.endswith(b"\nhello body")


def test_x_forwarded_for_sent_as_two_lines_is_one_list() -> None:
    # A proxy may add its own X-Forwarded-For line instead of appending to the
    # client's: the lines are joined with ", " (RFC 9110 §5.3), so the rightmost
    # untrusted hop is still found.
    server_kwargs = {"trusted_proxies": "10.0.0.0/8, 127.0.0.1"}
    with (
        BridgeServer(apps.echo_environ, server_kwargs=server_kwargs) as server,
        server.raw() as sock,
    ):
        sock.sendall(
            b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
            b"X-Forwarded-For: 6.6.6.6, 198.51.100.4\r\n"
            b"X-Forwarded-For: 10.0.0.2\r\n\r\n"
        )
        data, closed = read_until_close(sock, 5)
    assert closed and data.startswith(b"HTTP/1.1 200 ")
    assert b"\nREMOTE_ADDR='198.51.100.4'\n" in data


def test_a_unix_socket_peer_is_served_and_its_headers_are_ignored(tmp_path: Path) -> None:
    # A Unix-socket peer has no IP address (Tornado's address is ""): nothing to match
    # against trusted_proxies, nothing rewritten, and nothing to restore after the request.
    server_kwargs = {"trusted_proxies": "127.0.0.1"}
    path = str(tmp_path / "bridge.sock")
    with BridgeServer(apps.echo_environ, server_kwargs=server_kwargs) as server:

        def listen() -> None:
            assert server.http_server is not None
            server.http_server.add_socket(bind_unix_socket(path))

        server.call(listen)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(path)
            sock.sendall(
                b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                b"X-Forwarded-For: 198.51.100.4\r\nX-Forwarded-Proto: https\r\n\r\n"
            )
            data, closed = read_until_close(sock, 5)
    # Leaving the with block also checks that nothing raised on the server thread.
    assert closed and data.startswith(b"HTTP/1.1 200 ")
    assert b"\nwsgi.url_scheme='http'\n" in data
    assert b"\nREMOTE_ADDR='198.51.100.4'\n" not in data
