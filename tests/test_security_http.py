"""Security defaults over real sockets, on both sides (docs/security.md).

Session cookie flags, one CSRF scheme, security headers, trusted proxies, 431 and
the idle/body timeouts against slow clients.
"""

from __future__ import annotations

import socket
import time
from contextlib import closing

import httpx
import pytest
from flask import Flask, request

from tests.support.login import browser, csrf_token, meta_csrf_token, register_and_log_in
from tests.support.routes import add_native_route, with_views
from tests.support.server import LiveServer, ServerFactory
from tornado_handlers.base import BaseHandler

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "content-security-policy": "frame-ancestors 'none'",
    "referrer-policy": "strict-origin-when-cross-origin",
}


class WhoHandler(BaseHandler):
    """Test-only: what the native side believes about the client."""

    def get(self) -> None:
        self.write_json(
            {
                "remote": self.request.remote_ip,
                "scheme": self.request.protocol,
                "host": self.request.host,
            }
        )


def add_who_view(app: Flask) -> None:
    @app.get("/_test/who")
    def who() -> dict[str, str]:
        return {"remote": request.remote_addr or "", "scheme": request.scheme, "host": request.host}


def who_server(live_server: ServerFactory, **overrides: object) -> LiveServer:
    server = live_server(create_flask_app=with_views(add_who_view), **overrides)
    add_native_route(server.hybrid, r"/_test/native-who", WhoHandler)
    return server


# ------------------------------------------------------------------ 4. session cookies
def test_both_sides_write_the_session_cookie_httponly_lax_and_secure_in_production(
    live_server: ServerFactory,
) -> None:
    server = live_server(app_env="production")
    flask_side = httpx.get(server.url + "/auth/login")  # the form's CSRF token starts a session
    native_side = httpx.put(server.url + "/api/preferences", json={"theme": "dark"})
    for response in (flask_side, native_side):
        cookie = response.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie, cookie


# ------------------------------------------------------------------ 5. one CSRF scheme
def test_native_writes_need_the_flask_token_when_the_session_cookie_is_sent(
    live_server: ServerFactory,
) -> None:
    server = live_server()
    with closing(register_and_log_in(server)) as client:
        missing = client.put("/api/preferences", json={"theme": "dark"})
        assert missing.status_code == 400
        assert missing.json() == {"error": "The CSRF token is missing."}
        forged = client.put(
            "/api/preferences", json={"theme": "dark"}, headers={"X-CSRFToken": "forged"}
        )
        assert forged.status_code == 400
        assert forged.json() == {"error": "The CSRF token is invalid."}
        assert client.get("/api/preferences").json() == {"theme": "light"}  # nothing written

        page = client.get("/").text
        token = meta_csrf_token(page)
        assert token == csrf_token(page)  # the meta tag and the forms carry one token
        ok = client.put("/api/preferences", json={"theme": "dark"}, headers={"X-CSRFToken": token})
        assert ok.status_code == 200, ok.text
        # The same token works for a Flask form, and a Flask form needs it too.
        assert client.post("/auth/logout", data={}).status_code == 400
        assert client.post("/auth/logout", data={"csrf_token": token}).status_code == 302
        assert client.get("/api/me").status_code == 401


def test_a_token_of_another_session_is_refused_natively(live_server: ServerFactory) -> None:
    server = live_server()
    with browser(server) as mine, browser(server) as theirs:
        mine.get("/")
        their_token = meta_csrf_token(theirs.get("/").text)
        refused = mine.put(
            "/api/preferences", json={"theme": "dark"}, headers={"X-CSRFToken": their_token}
        )
        assert refused.status_code == 400
        assert refused.json() == {"error": "The CSRF tokens do not match."}


# ------------------------------------------------------------------ 6. security headers
def test_security_headers_on_both_sides_errors_and_static_files(
    live_server: ServerFactory,
) -> None:
    server = live_server(flask_mount="/app")
    responses = {
        "native": httpx.get(server.url + "/healthz"),
        "native error": httpx.patch(server.url + "/api/preferences"),
        "flask page": httpx.get(server.url + "/app/"),
        "flask 404": httpx.get(server.url + "/app/no-such-page"),
        "flask static": httpx.get(server.url + "/app/static/style.css"),
        "bridge's own 404": httpx.get(server.url + "/outside-the-mount"),
        "metrics": httpx.get(server.url + "/metrics", headers={"X-Request-ID": "scrape-1"}),
    }
    assert [r.status_code for r in responses.values()] == [200, 405, 200, 404, 200, 404, 200]
    assert responses["metrics"].headers["X-Request-ID"] == "scrape-1"
    for side, response in responses.items():
        assert response.headers.get("X-Request-ID"), side
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, (side, name)
        assert "strict-transport-security" not in response.headers, side  # http, no HSTS


def test_hsts_only_over_https_as_a_trusted_proxy_reports_it(live_server: ServerFactory) -> None:
    server = live_server(hsts_seconds=600, trusted_proxies=["127.0.0.1"])
    for path in ("/healthz", "/"):
        https = httpx.get(server.url + path, headers={"X-Forwarded-Proto": "https"})
        assert https.headers["strict-transport-security"] == "max-age=600; includeSubDomains"
        plain = httpx.get(server.url + path)
        assert "strict-transport-security" not in plain.headers


# ------------------------------------------------------------------ 7. trusted proxies
@pytest.mark.parametrize("path", ["/_test/native-who", "/_test/who"])
def test_forwarded_headers_are_ignored_from_an_untrusted_peer(
    live_server: ServerFactory, path: str
) -> None:
    server = who_server(live_server, trusted_proxies=["10.9.9.9"])
    spoofed = {"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https"}
    assert httpx.get(server.url + path, headers=spoofed).json() == {
        "remote": "127.0.0.1",
        "scheme": "http",
        "host": f"127.0.0.1:{server.port}",
    }


@pytest.mark.parametrize("path", ["/_test/native-who", "/_test/who"])
def test_forwarded_headers_are_honoured_from_a_trusted_proxy(
    live_server: ServerFactory, path: str
) -> None:
    server = who_server(live_server, trusted_proxies=["127.0.0.1"])
    forwarded = {
        # The client forged the first hop; the proxy appended what it saw.
        "X-Forwarded-For": "6.6.6.6, 203.0.113.7",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "example.org",
    }
    assert httpx.get(server.url + path, headers=forwarded).json() == {
        "remote": "203.0.113.7",
        "scheme": "https",
        "host": "example.org",
    }
    # The next request on the same keep-alive connection starts from the peer again.
    with httpx.Client() as client:
        client.get(server.url + path, headers=forwarded)
        again = client.get(server.url + path).json()
    assert again["remote"] == "127.0.0.1" and again["scheme"] == "http"


# ------------------------------------------------------------------ 8. 431
@pytest.mark.parametrize("path", ["/healthz", "/"])
def test_an_oversized_header_section_gets_431_on_both_sides(
    live_server: ServerFactory, path: str
) -> None:
    server = live_server()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nX-Big: ".encode() + b"a" * 70_000)
        sock.sendall(b"\r\n\r\n")
        head = sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")


# ------------------------------------------------------------------ 9. slow clients
def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Read until EOF; True if the server closed the connection within ``seconds``."""
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


def test_a_slow_loris_is_dropped_after_the_idle_timeout_while_others_are_served(
    live_server: ServerFactory,
) -> None:
    server = live_server(idle_timeout=1.0)
    with socket.create_connection(("127.0.0.1", server.port)) as loris:
        started = time.monotonic()
        loris.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
        dropped = False
        for _ in range(40):  # one header byte every 0.1 s: the head never completes
            try:
                loris.sendall(b"X")
            except OSError:
                dropped = True
                break
            # Others are served meanwhile, on both sides.
            assert httpx.get(server.url + "/healthz").status_code == 200
            assert httpx.get(server.url + "/auth/login").status_code == 200
            if closed_within(loris, 0.1):
                dropped = True
                break
        assert dropped, "the slow-loris connection was never dropped"
        assert time.monotonic() - started < 3.5  # 1 s timeout, not reset by each byte


@pytest.mark.parametrize("path", ["/api/preferences", "/auth/login"])
def test_a_slow_body_is_dropped_after_the_body_timeout(
    live_server: ServerFactory, path: str
) -> None:
    server = live_server(body_timeout=1.0)
    method = "PUT" if path.startswith("/api/") else "POST"
    with socket.create_connection(("127.0.0.1", server.port)) as slow:
        slow.sendall(
            f"{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            "Content-Length: 1000\r\n\r\n{".encode()
        )
        assert httpx.get(server.url + "/healthz").status_code == 200  # others are served
        assert closed_within(slow, 6), "the slow upload's connection was never closed"


def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout(
    live_server: ServerFactory,
) -> None:
    server = live_server(idle_timeout=1.0)
    for path in ("/healthz", "/auth/login"):
        with socket.create_connection(("127.0.0.1", server.port)) as idle:
            idle.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            idle.settimeout(10)
            assert idle.recv(4096).startswith(b"HTTP/1.1 200 ")
            assert closed_within(idle, 6), path  # 1 s of idleness, not the old 75 s
