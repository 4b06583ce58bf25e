"""The HTTP/1.1 edges (``wsgi_bridge.http1`` and the environ), over real sockets.

Numbers refer to the table "HTTP/1.1 edges" in docs/wsgi-bridge.md.  Raw sockets
where the framing is the subject.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest
import tornado
import tornado.web
from tornado.netutil import bind_sockets

from tests.bridge import apps
from tests.bridge.kinds import BOTH
from wsgi_bridge import WSGIContainer, WSGIFallbackHandler, access_log_function
from wsgi_bridge.compat import server_connections
from wsgi_bridge.http1 import CHUNK_LINE_LIMIT, LINGER_SECONDS, HTTPServer
from wsgi_bridge.testing import (
    BridgeServer,
    capture_logs,
    header_value,
    read_response_head,
    read_until_close,
    status_of,
    wait_for,
)


def environ_of(body: bytes) -> dict[str, str]:
    """Parse :func:`echo_path` output: one ``KEY=value`` per line, latin-1."""
    pairs = (line.split("=", 1) for line in body.decode("latin-1").splitlines())
    return {key: value for key, value in pairs}


def echo_path(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """The CGI variables the edges are about, as latin-1 bytes (byte for byte)."""
    keys = (
        "PATH_INFO",
        "QUERY_STRING",
        "HTTP_HOST",
        "SERVER_NAME",
        "SERVER_PORT",
        "SERVER_SOFTWARE",
        "REQUEST_URI",
    )
    body = "\n".join(f"{key}={environ.get(key, '<missing>')}" for key in keys)
    start_response("200 OK", [("Content-Type", "text/plain; charset=latin-1")])
    return [body.encode("latin-1")]


def exchange(server: BridgeServer, request: bytes, limit: float = 5) -> tuple[bytes, bool]:
    """Send raw ``request`` bytes on a new connection; read until the server closes.

    Unlike :func:`read_until_close`, a TCP reset is not swallowed: it raises
    ``ConnectionResetError``, which is what the lingering close must prevent.
    """
    with server.raw() as sock:
        sock.sendall(request)
        sock.settimeout(limit)
        data = bytearray()
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return bytes(data), True
            data += chunk


def split_response(data: bytes) -> tuple[bytes, bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


# ------------------------------------------------------ 1. raw bytes in the target
@BOTH
def test_raw_target_bytes_reach_path_info_byte_for_byte(kind: str) -> None:
    with BridgeServer(echo_path, kind=kind) as server:
        data, _ = exchange(
            server,
            b"GET /unicode/caf\xe9-\xe2\x82\xac?x=\xff HTTP/1.1\r\nHost: t\r\n"
            b"Connection: close\r\n\r\n",
        )
        env = environ_of(split_response(data)[1])
        assert env["PATH_INFO"] == "/unicode/caf\xe9-\xe2\x82\xac"  # the bytes, as latin-1
        assert env["QUERY_STRING"] == "x=\xff"
        # Percent-encoded targets decode as before: UTF-8 bytes, as latin-1 characters.
        data, _ = exchange(
            server, b"GET /caf%C3%A9%20x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        )
        assert environ_of(split_response(data)[1])["PATH_INFO"] == "/caf\xc3\xa9 x"


# ------------------------------------------------------ 2. HTTP/1.0 without Host
@BOTH
def test_http10_without_host_gets_the_local_port(kind: str) -> None:
    with BridgeServer(echo_path, kind=kind) as server:
        data, _ = exchange(server, b"GET /x HTTP/1.0\r\n\r\n")
        env = environ_of(split_response(data)[1])
        assert env["SERVER_PORT"] == str(server.port)
        assert env["SERVER_NAME"] == "127.0.0.1"
        assert env["HTTP_HOST"] == "<missing>"
        # With a Host, the Host still wins (PEP 3333 URL reconstruction).
        data, _ = exchange(server, b"GET /x HTTP/1.0\r\nHost: example.com:8080\r\n\r\n")
        env = environ_of(split_response(data)[1])
        assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("example.com", "8080")


def test_http10_without_host_over_ipv6_gets_the_bracketed_local_address() -> None:
    """Over IPv6, ``SERVER_NAME`` is the local address in brackets (``[::1]``), so
    PEP 3333 URL reconstruction gives a valid URL; ``SERVER_PORT`` the local port."""
    container = WSGIContainer(echo_path, max_workers=1)
    application = tornado.web.Application([(r".*", WSGIFallbackHandler, {"fallback": container})])
    try:
        with (
            _tornado_server(application, address="::1") as port,
            socket.create_connection(("::1", port), timeout=10) as sock,
        ):
            sock.sendall(b"GET /x HTTP/1.0\r\n\r\n")
            data, closed = read_until_close(sock, 5)
    finally:
        container.close()
    assert closed and status_of(data) == 200
    env = environ_of(split_response(data)[1])
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("[::1]", str(port))


# ------------------------------------------------------ 3. absolute-form target
@BOTH
def test_absolute_form_target_is_routed_by_its_path(kind: str) -> None:
    with BridgeServer(echo_path, kind=kind) as server:
        data, _ = exchange(
            server,
            b"GET http://h.example:81/native?q=1 HTTP/1.1\r\nHost: other\r\n"
            b"Connection: close\r\n\r\n",
        )
        head, body = split_response(data)
        assert status_of(head) == 200 and body == b"native"  # the native rule matched
        data, _ = exchange(
            server,
            b"GET http://h.example:81/path?q=1 HTTP/1.1\r\nHost: other\r\n"
            b"Connection: close\r\n\r\n",
        )
        env = environ_of(split_response(data)[1])
        assert env["PATH_INFO"] == "/path"
        assert env["QUERY_STRING"] == "q=1"
        assert env["REQUEST_URI"] == "/path?q=1"
        # RFC 9112 §3.2.2: the target's authority replaces the Host header.
        assert env["HTTP_HOST"] == "h.example:81"
        assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("h.example", "81")


def test_absolute_form_target_reaches_a_flask_route() -> None:
    with BridgeServer(apps.make_flask_app()) as server:
        data, _ = exchange(
            server,
            b"GET http://h.example:81/where HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        )
        head, body = split_response(data)
        assert status_of(head) == 200
        assert b'"path":"/where"' in body.replace(b" ", b"")
        assert b"http://h.example:81/where" in body


# ------------------------------------------------------ 4, 5. chunk extensions, trailers
CHUNKED_HEAD = b"POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"


@BOTH
@pytest.mark.parametrize(
    "body",
    [
        b'5;name=value\r\nhello\r\n6 ; a=1;b="two"\r\n world\r\n0;last\r\n\r\n',
        b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n",
        b"5;ext\r\nhello\r\n6\r\n world\r\n0;ext\r\nX-Checksum: abc\r\n\r\n",
    ],
    ids=["extensions", "trailers", "both"],
)
def test_chunk_extensions_and_trailers_deliver_the_body(kind: str, body: bytes) -> None:
    with BridgeServer(apps.read_body, kind=kind) as server, server.raw() as sock:
        for _ in range(2):  # the connection stays usable after the trailer section
            sock.sendall(CHUNKED_HEAD + body)
            head, rest = read_response_head(sock)
            assert status_of(head) == 200, head
            length = int(header_value(head, "Content-Length") or 0)
            while len(rest) < length:
                rest += sock.recv(65536)
            assert rest.endswith(b"\nhello world")
            assert rest.startswith(b"11 ")


def test_trailer_section_is_bounded_like_the_header_section() -> None:
    limit = 4096
    with BridgeServer(apps.read_body, server_kwargs={"max_header_size": limit}) as server:
        big = b"X-Pad: " + b"a" * (2 * limit) + b"\r\n"
        with server.raw() as sock:
            sock.sendall(CHUNKED_HEAD + b"5\r\nhello\r\n0\r\n" + big + b"\r\n")
            data, closed = read_until_close(sock, 5)
        assert closed
        assert b"hello" not in data  # the application never got the request


def test_chunk_size_line_is_bounded() -> None:
    # A chunk-size line (size and extensions) longer than CHUNK_LINE_LIMIT ends the
    # connection before the app runs (mutmut survivor: read_until without max_bytes).
    ext = b";pad=" + b"a" * (2 * CHUNK_LINE_LIMIT)
    with BridgeServer(apps.read_body) as server, server.raw() as sock:
        sock.sendall(CHUNKED_HEAD + b"5" + ext + b"\r\nhello\r\n0\r\n\r\n")
        data, closed = read_until_close(sock, 5)
    assert closed
    assert b"hello" not in data  # the application never got the request


@pytest.mark.parametrize(("body", "delivered"), [(b"helloworld", True), (b"helloworld!", False)])
def test_chunked_body_of_exactly_max_body_size_is_delivered(body: bytes, delivered: bool) -> None:
    # The limit counts de-chunked data (RFC 9112 §7.1): 10 bytes pass a 10-byte
    # max_body_size, 11 do not (intake.py's > made >= turns this red).
    chunks = b"5\r\n" + body[:5] + b"\r\n" + f"{len(body) - 5:x}".encode() + b"\r\n"
    chunks += body[5:] + b"\r\n0\r\n\r\n"
    request = CHUNKED_HEAD.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n") + chunks
    with (
        BridgeServer(apps.read_body, max_body_size=10) as server,
        server.raw() as sock,
    ):
        sock.sendall(request)
        data, closed = read_until_close(sock, 5)
    assert closed
    if delivered:
        assert status_of(data) == 200, data
        assert data.endswith(b"\n10 cl=None term=True\nhelloworld"), data
    else:
        assert b"helloworld" not in data


# ------------------------------------------------------ 6. 431 / 414
@pytest.mark.parametrize("path", ["/native", "/x"])
def test_header_section_over_the_limit_gets_431_then_close(path: str) -> None:
    with BridgeServer(apps.hello) as server:
        request = f"GET {path} HTTP/1.1\r\nHost: t\r\nX-Big: ".encode() + b"a" * 70_000
        data, closed = exchange(server, request + b"\r\n\r\n")
        head, body = split_response(data)
        assert closed
        assert head.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
        assert header_value(head, "Connection") == "close"
        assert body == b"431 Request Header Fields Too Large\n"
        # Just under the limit is served as usual.
        ok = f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-Big: ".encode()
        data, _ = exchange(server, ok + b"a" * 60_000 + b"\r\n\r\n")
        assert status_of(data) == 200


def test_header_limit_follows_max_header_size() -> None:
    with BridgeServer(apps.hello, server_kwargs={"max_header_size": 1024}) as server:
        data, _ = exchange(
            server, b"GET /x HTTP/1.1\r\nHost: t\r\nX-A: " + b"a" * 2000 + b"\r\n\r\n"
        )
        assert status_of(data) == 431


def test_request_line_over_the_limit_gets_414_then_close() -> None:
    with BridgeServer(apps.hello) as server:
        data, closed = exchange(server, b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: t\r\n\r\n")
        head, _ = split_response(data)
        assert closed
        assert head.startswith(b"HTTP/1.1 414 URI Too Long\r\n")
        assert header_value(head, "Connection") == "close"


def test_header_section_arriving_in_pieces_is_measured_whole() -> None:
    with BridgeServer(apps.hello) as server, server.raw() as sock:
        sock.sendall(b"GET /x HTTP/1.1\r\nHost: t\r\n")
        for _ in range(9):
            sock.sendall(b"X-Pad: " + b"a" * 8000 + b"\r\n")
            time.sleep(0.01)  # separate reads on the server; not a timing assertion
        sock.sendall(b"\r\n")
        data, closed = read_until_close(sock, 5)
        assert closed and status_of(data) == 431


# ------------------------------------------------------ 7. set_default_headers
class BrandedHandler(WSGIFallbackHandler):
    """A fallback subclass that brands every response through Tornado's hook."""

    def set_default_headers(self) -> None:
        self.set_header("Server", "mysrv")
        self.set_header("X-Frame-Options", "DENY")


def own_frame_options(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("x-frame-options", "SAMEORIGIN")])
    return [b"ok"]


def test_set_default_headers_reaches_wsgi_responses_app_headers_win() -> None:
    assert BrandedHandler._has_default_headers  # decided once, for the class
    assert not WSGIFallbackHandler._has_default_headers
    with BridgeServer(own_frame_options, handler=BrandedHandler) as server:
        status, headers, body = server.request("GET", "/x")
        assert (status, body) == (200, b"ok")
        assert headers.get_all("Server") == ["mysrv"]
        assert headers.get_all("X-Frame-Options") == ["SAMEORIGIN"]  # the app's wins
    with BridgeServer(apps.hello, handler=BrandedHandler, max_body_size=10) as server:
        # The bridge's own answers (here 413) carry the defaults too.
        status, headers, _ = server.request("POST", "/x", body=b"x" * 100)
        assert status == 413
        assert headers["Server"] == "mysrv" and headers["X-Frame-Options"] == "DENY"
    with BridgeServer(apps.hello, handler=BrandedHandler, script_name="/app") as server:
        status, headers, _ = server.request("GET", "/elsewhere")  # outside the mount: 404
        assert status == 404
        assert headers["Server"] == "mysrv" and headers["X-Frame-Options"] == "DENY"


def test_set_default_headers_of_a_subclass_defined_at_run_time() -> None:
    """The override is detected for every subclass, also one defined after import (in
    an app factory, say): the decision is made per class, when the class is made."""

    class LateBranded(WSGIFallbackHandler):
        def set_default_headers(self) -> None:
            self.set_header("Server", "late")

    class LatePlain(WSGIFallbackHandler):
        pass

    assert LateBranded._has_default_headers is True
    assert LatePlain._has_default_headers is False
    with BridgeServer(apps.hello, handler=LateBranded) as server:
        status, headers, _ = server.request("GET", "/x")
        assert (status, headers.get_all("Server")) == (200, ["late"])
    with BridgeServer(apps.hello, handler=LatePlain) as server:
        status, headers, _ = server.request("GET", "/x")
        assert status == 200 and "Server" not in headers


def test_handler_subclass_sees_its_fallback_and_on_finish_once() -> None:
    """As with Tornado's ``FallbackHandler``, ``self.fallback`` is the container, and a
    subclass's ``on_finish`` runs once per request, after the response."""
    finished: list[Any] = []

    class Finishing(WSGIFallbackHandler):
        def on_finish(self) -> None:
            finished.append((self.fallback, self.get_status()))

    with BridgeServer(apps.hello, handler=Finishing) as server:
        assert server.request("GET", "/x")[0] == 200
        assert wait_for(lambda: len(finished) == 1)
        container = server.container
    assert finished == [(container, 200)]


def test_tornados_own_error_before_the_bridge_is_logged_as_sent() -> None:
    """An error Tornado answers before the handler's ``prepare`` (a route's capture
    group with invalid UTF-8: 400) gets an access line with Tornado's status and
    body size, not marked aborted."""
    container = WSGIContainer(apps.hello, max_workers=1)
    application = tornado.web.Application(
        [(r"/legacy/(.*)", WSGIFallbackHandler, {"fallback": container})],
        log_function=access_log_function,
    )
    try:
        with capture_logs("tornado.access") as logs, _tornado_server(application) as port:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(b"GET /legacy/%FF HTTP/1.1\r\nHost: t\r\n\r\n")
                head, _ = read_response_head(sock, 5)
            assert status_of(head) == 400
            length = int(header_value(head, "Content-Length") or -1)
            assert wait_for(lambda: any("/legacy/%FF" in m for m in logs.messages()))
    finally:
        container.close()
    (line,) = [m for m in logs.messages() if "/legacy/%FF" in m]
    assert line.startswith(f"GET /legacy/%FF 400 {length}B ") and line.endswith(" side=wsgi")


def test_fast_mount_default_headers_reach_wsgi_responses_app_headers_win() -> None:
    defaults = {"default_headers": [("Server", "mysrv"), ("X-Frame-Options", "DENY")]}
    with BridgeServer(own_frame_options, "bridge-fast", mount_options=defaults) as server:
        status, headers, body = server.request("GET", "/x")
        assert (status, body) == (200, b"ok")
        assert headers.get_all("Server") == ["mysrv"]
        assert headers.get_all("X-Frame-Options") == ["SAMEORIGIN"]  # the app's wins
    with BridgeServer(
        apps.hello, "bridge-fast", mount_options=defaults, max_body_size=10
    ) as server:
        # The bridge's own answers (here 413) carry the defaults too.
        status, headers, _ = server.request("POST", "/x", body=b"x" * 100)
        assert status == 413
        assert headers["Server"] == "mysrv" and headers["X-Frame-Options"] == "DENY"
    with BridgeServer(
        apps.hello, "bridge-fast", mount_options=defaults, script_name="/app"
    ) as server:
        status, headers, _ = server.request("GET", "/elsewhere")  # outside the mount: 404
        assert status == 404
        assert headers["Server"] == "mysrv" and headers["X-Frame-Options"] == "DENY"
    with BridgeServer(apps.hello, "bridge-fast") as server:
        assert "Server" not in server.request("GET", "/x")[1]


def test_plain_handler_adds_no_default_headers() -> None:
    with BridgeServer(apps.hello) as server:
        _, headers, _ = server.request("GET", "/x")
        assert "Server" not in headers


# ------------------------------------------------------ 8. answer before the body
def test_early_answer_to_a_large_upload_closes_gently() -> None:
    body = b"x" * 200_000  # more than request_buffer_size (64 KiB)
    request = b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body)
    second = b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n"
    with BridgeServer(apps.hello) as server:
        # Raises ConnectionResetError if the server resets instead of lingering.
        data, closed = exchange(server, request + body + second)
        head, rest = split_response(data)
        assert closed
        assert status_of(head) == 200
        assert header_value(head, "Connection") == "close"
        assert rest == b"hello"  # the whole response, and nothing for the second request
        assert server.request("GET", "/native")[0] == 200


def test_lingering_close_is_bounded_in_time() -> None:
    def answer_early(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    with BridgeServer(answer_early) as server, server.raw() as sock:
        # Announce 10 MB, send 100 KB: the response comes, then the write side closes.
        sock.sendall(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n\r\n")
        sock.sendall(b"x" * 100_000)
        data, eof = read_until_close(sock, 5)
        assert eof and data.endswith(b"\r\n\r\nok")
        assert header_value(data.partition(b"\r\n\r\n")[0], "Connection") == "close"
        # The server still reads (and drops) what the client sends, for a bounded time:
        # once it closed the socket, sending fails with a reset or a broken pipe.
        start = time.monotonic()
        closed_after = None
        while time.monotonic() - start < LINGER_SECONDS + 8:
            try:
                sock.send(b"y" * 1000)
            except OSError:
                closed_after = time.monotonic() - start
                break
            time.sleep(0.02)
        assert closed_after is not None, "the lingering close never ended"
        assert closed_after < LINGER_SECONDS + 5  # generous: bounded, not a speed check


def test_small_unread_body_keeps_the_connection() -> None:
    with BridgeServer(apps.hello) as server, server.raw() as sock:
        for _ in range(2):
            sock.sendall(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
            head, rest = read_response_head(sock)
            assert status_of(head) == 200 and header_value(head, "Connection") is None
            while len(rest) < 5:
                rest += sock.recv(100)


# ------------------------------------------------------ 9. SERVER_SOFTWARE
def test_server_software_default_and_configured() -> None:
    with BridgeServer(echo_path) as server:
        env = environ_of(server.request("GET", "/x")[2])
        assert env["SERVER_SOFTWARE"] == f"wsgi_bridge TornadoServer/{tornado.version}"
    with BridgeServer(echo_path, server_software="svc/1.2") as server:
        assert environ_of(server.request("GET", "/x")[2])["SERVER_SOFTWARE"] == "svc/1.2"


# ------------------------------------------------------ the head size check keeps the idle timeout
def test_idle_keep_alive_connection_still_times_out() -> None:
    """The size check waits for each request head, so it carries Tornado's
    ``idle_connection_timeout`` (a guard: the check must not wait forever)."""
    with (
        BridgeServer(apps.hello, server_kwargs={"idle_connection_timeout": 0.5}) as server,
        server.raw() as sock,
    ):
        sock.sendall(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
        head, _ = read_response_head(sock)
        assert status_of(head) == 200
        start = time.monotonic()
        _, closed = read_until_close(sock, 10)  # generous; the subject is "it closes"
        assert closed and time.monotonic() - start < 9


# ------------------------------------------------------------- 10. TCP_NODELAY
class _NodelayHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        sock = self.request.connection.stream.socket  # type: ignore[union-attr]
        self.write(str(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0))


@contextlib.contextmanager
def _tornado_server(
    application: tornado.web.Application,
    on_loop: Callable[[], None] | None = None,
    address: str = "127.0.0.1",
) -> Iterator[int]:
    """Serve ``application`` with wsgi_bridge.HTTPServer on a thread; yields the port.

    :param on_loop: called on the server's loop thread before serving.
    :param address: the address to listen on (``"::1"`` for IPv6).
    """
    started = threading.Event()
    state: dict[str, Any] = {}

    async def main() -> None:
        if on_loop is not None:
            on_loop()
        sockets = bind_sockets(0, address)
        state["port"] = sockets[0].getsockname()[1]
        server = HTTPServer(application)
        server.add_sockets(sockets)
        state["stop"] = stop = asyncio.Event()
        state["loop"] = asyncio.get_running_loop()
        started.set()
        await stop.wait()
        server.stop()
        await server.close_all_connections()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield state["port"]
    finally:
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(10)


def test_tcp_nodelay_is_set_once_and_stays_on_between_responses() -> None:
    """Tornado turns TCP_NODELAY on and off around every response (two setsockopt
    calls); wsgi_bridge.HTTPServer sets it once per connection and leaves it on."""
    with _tornado_server(tornado.web.Application([(r"/nodelay", _NodelayHandler)])) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        seen = []
        for _ in range(3):  # one keep-alive connection
            conn.request("GET", "/nodelay")
            seen.append(conn.getresponse().read())
        conn.close()
    assert seen == [b"True", b"True", b"True"]


class _HelloHandler(tornado.web.RequestHandler):
    streams: ClassVar[list[Any]] = []

    def get(self) -> None:
        self.streams.append(self.request.connection.stream)  # type: ignore[union-attr]
        self.write("hello")


def count_selector_calls(calls: list[str]) -> None:
    """Record in ``calls`` each register/unregister/modify of the running loop's selector.

    Call it on the IOLoop thread (e.g. as a server's start hook).
    """
    selector: Any = asyncio.get_running_loop()._selector  # type: ignore[attr-defined]
    for name in ("register", "unregister", "modify"):
        real = getattr(selector, name)

        def counted(*args: Any, _real: Any = real, _name: str = name, **kw: Any) -> Any:
            calls.append(_name)
            return _real(*args, **kw)

        setattr(selector, name, counted)


def test_head_size_check_keeps_the_read_listener_between_requests() -> None:
    """The head-size check reads the head and gives it back (compat.unread): Tornado's
    read listener then stays registered between keep-alive requests, instead of one
    epoll unregister + register per request (counted on the loop's real selector)."""
    calls: list[str] = []
    _HelloHandler.streams.clear()

    app = tornado.web.Application([(r"/hello", _HelloHandler)])
    with _tornado_server(app, lambda: count_selector_calls(calls)) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/hello")
        assert conn.getresponse().read() == b"hello"
        before = len(calls)
        (stream,) = set(_HelloHandler.streams)
        for _ in range(20):  # the same keep-alive connection
            # Send once the server waits for the next head: a request that arrives
            # before that lands in the buffer unasked (then Tornado drops its
            # listener whatever the check does; bare Tornado too).
            assert wait_for(stream.reading)
            conn.request("GET", "/hello")
            assert conn.getresponse().read() == b"hello"
        during = calls[before:]
        conn.close()
    assert len(during) <= 2, during


class _GatedHandler(tornado.web.RequestHandler):
    """Answers once the test sets the event it published for this request."""

    streams: ClassVar[list[Any]] = []
    gates: ClassVar[list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = []
    entered = threading.Semaphore(0)

    async def get(self) -> None:
        gate = asyncio.Event()
        self.streams.append(self.request.connection.stream)  # type: ignore[union-attr]
        self.gates.append((asyncio.get_running_loop(), gate))
        self.entered.release()
        await gate.wait()
        self.write("done")


def test_next_head_is_read_ahead_while_the_response_is_in_progress() -> None:
    """While a response waits for the application, the server already reads the next
    request's head: a request arriving then is consumed by that pending read, so
    Tornado keeps its read listener (no epoll unregister + register per request)."""
    calls: list[str] = []

    def release(index: int) -> None:
        loop, gate = _GatedHandler.gates[index]
        loop.call_soon_threadsafe(gate.set)

    _GatedHandler.streams.clear()
    _GatedHandler.gates.clear()
    app = tornado.web.Application([(r"/gated", _GatedHandler)])
    request = b"GET /gated HTTP/1.1\r\nHost: t\r\n\r\n"
    with (
        _tornado_server(app, lambda: count_selector_calls(calls)) as port,
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
    ):
        sock.sendall(request)
        assert _GatedHandler.entered.acquire(timeout=10)
        (stream,) = _GatedHandler.streams
        assert wait_for(stream.reading)  # the next head is being read already
        before = len(calls)
        sock.sendall(request)  # arrives while the first response is pending
        assert wait_for(lambda: not stream.reading())  # taken by that read
        release(0)
        assert _GatedHandler.entered.acquire(timeout=10)
        release(1)
        data = b""
        while data.count(b"done") < 2:
            piece = sock.recv(65536)
            assert piece
            data += piece
        during = calls[before:]
    assert data.count(b"HTTP/1.1 200 OK") == 2
    assert not during, during


# ------------------------------------------------------ draining: Connection: close
@pytest.mark.parametrize("path", ["/native", "/x"], ids=["native", "wsgi"])
def test_while_draining_each_response_closes_its_keep_alive_connection(path: str) -> None:
    request = f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode()
    with BridgeServer(echo_path) as server, server.raw() as sock:
        sock.sendall(request)
        head, body = read_response_head(sock)
        assert status_of(head) == 200 and header_value(head, "Connection") is None
        while len(body) < int(header_value(head, "Content-Length") or 0):
            body += sock.recv(65536)
        assert server.http_server is not None
        server.call(server.http_server.start_draining)
        sock.sendall(request)  # the same connection, kept alive so far
        data, closed = read_until_close(sock)
        head, _, _ = data.partition(b"\r\n\r\n")
        assert status_of(head) == 200
        assert header_value(head, "Connection") == "close"
        assert closed  # the server closed it after the response


# ------------------------------------------------------ stop(): the listen queue is served
@pytest.mark.parametrize("path", ["/native", "/x"], ids=["native", "wsgi"])
def test_stop_serves_the_connections_waiting_to_be_accepted(path: str) -> None:
    request = f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode()
    with BridgeServer(echo_path) as server:
        assert server.http_server is not None
        http_server = server.http_server

        def queue_then_stop() -> list[socket.socket]:
            # On the IOLoop thread: the loop cannot accept these before stop() runs.
            clients = []
            for _ in range(3):
                client = socket.create_connection(("127.0.0.1", server.port), timeout=5)
                client.sendall(request)
                clients.append(client)
            http_server.start_draining()
            http_server.stop()
            return clients

        clients = server.call(queue_then_stop)
        for client in clients:
            with client:
                data, closed = read_until_close(client)
            head = data.partition(b"\r\n\r\n")[0]
            assert head and status_of(head) == 200, data
            assert header_value(head, "Connection") == "close" and closed


# ------------------------------------------------ close_connections: arrived requests are served
def busy_connections(http_server: HTTPServer) -> int:
    """Connections of ``http_server`` with a request under way (IOLoop thread)."""
    return sum(not conn.idle() for conn in server_connections(http_server))


def _keep_alive_exchange(sock: socket.socket, request: bytes) -> None:
    """One request on ``sock`` with its whole response read, the connection kept."""
    sock.sendall(request)
    head, body = read_response_head(sock)
    assert status_of(head) == 200 and header_value(head, "Connection") is None
    while len(body) < int(header_value(head, "Content-Length") or 0):
        body += sock.recv(65536)


@pytest.mark.parametrize("path", ["/native", "/x"], ids=["native", "wsgi"])
def test_close_connections_serves_a_request_that_arrived_before_it(path: str) -> None:
    # The request reaches the kernel of an accepted, idle keep-alive connection in the
    # same IOLoop callback that starts closing: nothing has read it yet. Tornado's
    # close_all_connections() would close the connection and the client get no answer.
    request = f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode()
    with BridgeServer(echo_path) as server, server.raw() as sock:
        _keep_alive_exchange(sock, request)
        http_server = server.http_server
        assert http_server is not None

        def send_then_close() -> Any:
            sock.sendall(request)
            http_server.start_draining()
            return http_server.close_connections(5)

        cut_short = server.call(send_then_close)
        data, closed = read_until_close(sock)
        head = data.partition(b"\r\n\r\n")[0]
        assert head and status_of(head) == 200, data
        assert header_value(head, "Connection") == "close" and closed
        assert cut_short == 0


@pytest.mark.parametrize("path", ["/native", "/x"], ids=["native", "wsgi"])
def test_close_connections_waits_for_a_head_under_way_and_closes_idle_ones(path: str) -> None:
    head_part, rest = f"GET {path} HTTP/1.1\r\n".encode(), b"Host: t\r\n\r\n"
    request = head_part + rest
    with BridgeServer(echo_path) as server, server.raw() as busy, server.raw() as idle:
        _keep_alive_exchange(busy, request)
        _keep_alive_exchange(idle, request)
        http_server = server.http_server
        assert http_server is not None
        busy.sendall(head_part)  # half a head: a request under way
        wait_for(lambda: server.call(lambda: busy_connections(http_server)) == 1)
        server.call(http_server.start_draining)
        assert server.loop is not None
        closing = asyncio.run_coroutine_threadsafe(
            http_server.close_connections(5), server.loop.asyncio_loop
        )
        assert read_until_close(idle)[1]  # the idle connection is closed at once ...
        assert not closing.done()  # ... while the other one is waited for
        busy.sendall(rest)
        data, closed = read_until_close(busy)
        head = data.partition(b"\r\n\r\n")[0]
        assert head and status_of(head) == 200, data
        assert header_value(head, "Connection") == "close" and closed
        assert closing.result(5) == 0


def test_close_connections_gives_up_on_a_head_that_never_ends() -> None:
    with BridgeServer(echo_path) as server, server.raw() as sock:
        http_server = server.http_server
        assert http_server is not None
        sock.sendall(b"GET /native HTTP/1.1\r\n")  # and nothing more
        wait_for(lambda: server.call(lambda: busy_connections(http_server)) == 1)
        assert server.call(lambda: http_server.close_connections(0.2)) == 1
        assert read_until_close(sock)[1]
