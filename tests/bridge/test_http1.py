"""The HTTP/1.1 edges (``wsgi_bridge.http1`` and the environ), over real sockets.

Numbers refer to the table "HTTP/1.1 edges" in docs/wsgi-bridge.md.  Raw sockets
where the framing is the subject.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import logging
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
import tornado
import tornado.http1connection
import tornado.httpserver
import tornado.httputil
import tornado.web
import tornado.websocket
from tornado.concurrent import Future
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream
from tornado.netutil import bind_sockets

from tests.bridge import apps
from tests.bridge.kinds import BOTH
from wsgi_bridge import WSGIContainer, WSGIFallbackHandler, access_log_function, compat, testing
from wsgi_bridge.compat import server_connections, unread
from wsgi_bridge.http1 import (
    CHUNK_LINE_LIMIT,
    LINGER_SECONDS,
    HTTP1Connection,
    HTTP1ServerConnection,
    HTTPServer,
    linger_close,
    observe_response,
)
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


class BodyRecorder:
    """A response observer (``observe_response``) keeping the body chunks it is shown."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.finished = False

    def on_headers(self, start_line: Any, headers: Any) -> None:
        """Nothing to do with the head."""

    def on_data(self, chunk: bytes) -> None:
        self.chunks.append(chunk)

    def on_finish(self) -> None:
        self.finished = True


class ObservedHandler(WSGIFallbackHandler):
    """A fallback that has every response observed, as the service's canary and shadow do."""

    recorders: ClassVar[list[BodyRecorder]] = []
    make: ClassVar[Callable[[], BodyRecorder]] = BodyRecorder

    def prepare(self) -> None:
        recorder = ObservedHandler.make()
        assert observe_response(self.request, recorder)
        ObservedHandler.recorders.append(recorder)
        super().prepare()


def test_observers_see_every_chunk_of_a_chunked_body_the_pump_frames() -> None:
    """The pump frames a chunked body itself, straight to the stream: response observers
    (``observe_response``) still see each chunk written after the head."""
    proceed = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"one,"
        assert proceed.wait(10)
        yield b"two,"
        yield b"three"

    ObservedHandler.recorders.clear()
    with BridgeServer(app, handler=ObservedHandler) as server, server.raw() as sock:
        body = get_chunked_in_steps(sock, proceed)
        assert body == b"4\r\none,\r\n4\r\ntwo,\r\n5\r\nthree\r\n0\r\n\r\n"
        (recorder,) = ObservedHandler.recorders
        assert wait_for(lambda: recorder.finished)
    assert b"".join(recorder.chunks) == b"one,two,three"


def get_chunked_in_steps(sock: socket.socket, proceed: threading.Event) -> bytes:
    """GET ``/s`` on ``sock`` from an app that yields ``one,`` then waits for ``proceed``:
    check the head says chunked and the first chunk arrives before ``proceed`` is set;
    return the raw chunked body through its last chunk."""
    sock.sendall(b"GET /s HTTP/1.1\r\nHost: t\r\n\r\n")
    head, body = read_response_head(sock)
    assert header_value(head, "Transfer-Encoding") == "chunked"
    while b"one," not in body:
        body += sock.recv(65536)  # the head and the first chunk went out ...
    proceed.set()  # ... before the app yields the others
    while not body.endswith(b"0\r\n\r\n"):
        more = sock.recv(65536)
        assert more, "closed before the last chunk"
        body += more
    return body


def test_chunked_stream_under_tornados_own_httpserver(monkeypatch: pytest.MonkeyPatch) -> None:
    """The drop-in ``tornado.httpserver.HTTPServer(container)``: Tornado's own
    ``HTTP1Connection`` (no response observers) still gets a chunked body the pump
    frames itself, chunk after chunk."""
    proceed = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"one,"
        assert proceed.wait(10)
        yield b"two,"
        yield b"three"

    monkeypatch.setattr(testing, "HTTPServer", tornado.httpserver.HTTPServer)
    with BridgeServer(app, kind="bridge-server") as server, server.raw() as sock:
        assert type(server.http_server).__module__ == "tornado.httpserver"
        body = get_chunked_in_steps(sock, proceed)
    assert body == b"4\r\none,\r\n4\r\ntwo,\r\n5\r\nthree\r\n0\r\n\r\n"


class BrokenObserver(BodyRecorder):
    """Raises on every chunk after the first: a write that fails with the connection open."""

    def on_data(self, chunk: bytes) -> None:
        super().on_data(chunk)
        if len(self.chunks) > 1:
            raise RuntimeError("observer broke")


class EndlessBody:
    """64 KiB chunks until the bridge says stop; the first alone, then after ``proceed``."""

    def __init__(self, proceed: threading.Event) -> None:
        self.proceed = proceed
        self.pulled = 0
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self.pulled == 1:
            assert self.proceed.wait(10)
        if self.pulled >= 10_000:
            raise StopIteration
        self.pulled += 1
        return b"x" * 65536

    def close(self) -> None:
        self.closed.set()


def test_write_failing_with_the_connection_open_closes_it_and_stops_the_app() -> None:
    """A write that raises while the socket is still open (here a response observer
    breaking mid-body): the error is logged, the connection is closed (the truncated
    body never looks complete), the app's iteration stops and ``close()`` runs."""
    proceed = threading.Event()
    body = EndlessBody(proceed)

    def app(environ: dict[str, Any], start_response: Any) -> EndlessBody:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return body

    ObservedHandler.recorders.clear()
    ObservedHandler.make = BrokenObserver
    try:
        with (
            capture_logs("wsgi_bridge") as logs,
            BridgeServer(app, handler=ObservedHandler) as server,
            server.raw() as sock,
        ):
            sock.sendall(b"GET /s HTTP/1.1\r\nHost: t\r\nX-Request-ID: broken-1\r\n\r\n")
            head, received = read_response_head(sock)
            assert header_value(head, "Transfer-Encoding") == "chunked"
            proceed.set()
            rest, closed = read_until_close(sock, 5)
            assert closed, "connection must be closed, not left hanging"
            assert not (received + rest).endswith(b"0\r\n\r\n")
            assert body.closed.wait(5), "the app must be stopped and closed"
            assert body.pulled < 10_000
    finally:
        ObservedHandler.make = BodyRecorder
    assert logs.messages(logging.ERROR) == [
        "response to GET /s could not be completed (id=broken-1): observer broke"
    ]


class HeadBreakingObserver(BodyRecorder):
    """Raises as the head is written: a head write that fails with the connection open."""

    def on_headers(self, start_line: Any, headers: Any) -> None:
        raise RuntimeError("observer broke the head")


@pytest.mark.parametrize("path", ["/whole", "/elsewhere"])
def test_head_write_failing_is_logged_with_its_reason_and_closes(path: str) -> None:
    """A head write that raises, on the whole-body fast path (``/whole``) and on the
    bridge's own 404 (outside ``script_name``): one ERROR naming the request and the
    error, and the connection is closed."""
    ObservedHandler.recorders.clear()
    ObservedHandler.make = HeadBreakingObserver
    try:
        with (
            capture_logs("wsgi_bridge") as logs,
            BridgeServer(apps.hello, handler=ObservedHandler, script_name="/whole") as server,
            server.raw() as sock,
        ):
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nX-Request-ID: h-1\r\n\r\n".encode())
            data, closed = read_until_close(sock, 5)
            assert closed and data == b""
    finally:
        ObservedHandler.make = BodyRecorder
    assert logs.messages(logging.ERROR) == [
        f"response to GET {path} could not be completed (id=h-1): observer broke the head"
    ]


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
    **server_kwargs: Any,
) -> Iterator[int]:
    """Serve ``application`` with wsgi_bridge.HTTPServer on a thread; yields the port.

    :param on_loop: called on the server's loop thread before serving.
    :param server_kwargs: ``HTTPServer`` arguments (``chunk_size``, ``max_body_size``...).
    :param address: the address to listen on (``"::1"`` for IPv6).
    """
    started = threading.Event()
    state: dict[str, Any] = {}

    async def main() -> None:
        if on_loop is not None:
            on_loop()
        sockets = bind_sockets(0, address)
        state["port"] = sockets[0].getsockname()[1]
        server = HTTPServer(application, **server_kwargs)
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


class _EchoSocket(tornado.websocket.WebSocketHandler):
    def on_message(self, message: str | bytes) -> None:
        self.write_message(message)


def test_while_draining_a_101_upgrade_keeps_its_connection() -> None:
    """Draining closes each connection after its response, except after ``101
    Switching Protocols``: the upgraded connection (a WebSocket) is no longer HTTP
    and stays open."""

    async def scenario() -> str | bytes | None:
        sockets = bind_sockets(0, "127.0.0.1")
        port = sockets[0].getsockname()[1]
        server = HTTPServer(tornado.web.Application([(r"/ws", _EchoSocket)]))
        server.add_sockets(sockets)
        server.start_draining()
        try:
            ws = await tornado.websocket.websocket_connect(f"ws://127.0.0.1:{port}/ws")
            await ws.write_message("ping")
            reply = await asyncio.wait_for(ws.read_message(), 5)
            ws.close()
            return reply
        finally:
            server.stop()
            await server.close_all_connections()

    assert asyncio.run(scenario()) == "ping"


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


def peer_and_scheme(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """``REMOTE_ADDR`` and ``wsgi.url_scheme``, as ``addr scheme``."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{environ['REMOTE_ADDR']} {environ['wsgi.url_scheme']}".encode()]


def test_accept_pending_counts_the_queued_connections_and_serves_each_with_its_peer() -> None:
    """``compat.accept_pending`` (what ``stop()`` runs first) returns how many waiting
    connections it accepted, and serves each as the accept handler would: with its
    real peer address."""
    request = b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    with BridgeServer(peer_and_scheme) as server:
        assert server.http_server is not None
        http_server = server.http_server

        def queue_then_accept() -> tuple[list[socket.socket], int]:
            # On the IOLoop thread: the loop cannot accept these itself meanwhile.
            clients = []
            for _ in range(2):
                client = socket.create_connection(("127.0.0.1", server.port), timeout=5)
                client.sendall(request)
                clients.append(client)
            return clients, compat.accept_pending(http_server)

        clients, accepted = server.call(queue_then_accept)
        with contextlib.ExitStack() as stack:
            for client in clients:
                stack.enter_context(client)
            assert accepted == 2
            for client in clients:
                data, closed = read_until_close(client)
                head, _, body = data.partition(b"\r\n\r\n")
                assert status_of(head) == 200 and closed
                assert body == b"127.0.0.1 http"


def test_protocol_xheaders_and_trusted_downstream_of_the_server_reach_the_request() -> None:
    """``HTTPServer(protocol=..., xheaders=True, trusted_downstream=[...])`` work as in
    Tornado: the scheme is the given protocol, and ``X-Forwarded-For`` is read past
    the trusted downstream proxy."""
    options = {"protocol": "https", "xheaders": True, "trusted_downstream": ["10.9.9.9"]}
    with BridgeServer(peer_and_scheme, server_kwargs=options) as server:
        headers = {"X-Forwarded-For": "10.1.1.1, 10.9.9.9"}
        assert server.request("GET", "/x", headers=headers)[::2] == (200, b"10.1.1.1 https")


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


# ------------------------------------------------- the chunked reader, seen by a native handler
class _Deliveries:
    """What a :class:`_ChunkRecorder` saw: each ``data_received`` chunk, with the
    IOLoop turn (``tick``) it came in; ``tick`` counts IOLoop iterations while
    ``ticking``."""

    def __init__(self, ticking: bool = False) -> None:
        self.chunks: list[bytes] = []
        self.ticks: list[int] = []
        self.tick = 0
        self.ticking = ticking
        self.prepared = threading.Event()
        self.five_bytes = threading.Event()

    def advance(self) -> None:
        if self.ticking:
            self.tick += 1
            IOLoop.current().add_callback(self.advance)


@tornado.web.stream_request_body
class _ChunkRecorder(tornado.web.RequestHandler):
    """Records each ``data_received`` chunk; answers with the body it got."""

    def initialize(self, seen: _Deliveries) -> None:
        self.seen = seen

    def prepare(self) -> None:
        if self.seen.ticking:
            IOLoop.current().add_callback(self.seen.advance)
        self.seen.prepared.set()

    def data_received(self, chunk: bytes) -> None:
        self.seen.chunks.append(chunk)
        self.seen.ticks.append(self.seen.tick)
        if sum(map(len, self.seen.chunks)) >= 5:
            self.seen.five_bytes.set()

    def post(self) -> None:
        self.seen.ticking = False
        self.write(b"".join(self.seen.chunks))

    def on_connection_close(self) -> None:
        self.seen.ticking = False


def _recorder_app(seen: _Deliveries) -> tornado.web.Application:
    return tornado.web.Application([(r"/rec", _ChunkRecorder, {"seen": seen})])


_NATIVE_CHUNKED = b"POST /rec HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
_NATIVE_CHUNKED += b"Connection: close\r\n\r\n"


def _chunked(*parts: bytes) -> bytes:
    """``parts`` as chunks, then the last chunk and an empty trailer section."""
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"


def _native_exchange(port: int, request: bytes) -> tuple[bytes, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data, closed = read_until_close(sock, 5)
    assert closed
    return split_response(data)


def test_chunked_data_reaches_a_streaming_handler_as_it_arrives() -> None:
    """Data of a chunk is delivered when the next read would wait for the network,
    even mid-chunk: a streaming handler sees ``hello`` of a 10-byte chunk before
    the client sent the rest (Tornado's rule, kept by the override)."""
    seen = _Deliveries()
    with (
        _tornado_server(_recorder_app(seen)) as port,
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
    ):
        sock.sendall(_NATIVE_CHUNKED)
        assert seen.prepared.wait(5)  # the reader now waits for the first chunk-size line
        sock.sendall(b"a\r\nhello")
        assert seen.five_bytes.wait(5), seen.chunks
        sock.sendall(b"world\r\n0\r\n\r\n")
        data, closed = read_until_close(sock, 5)
    head, body = split_response(data)
    assert closed and status_of(head) == 200 and body == b"helloworld"
    assert b"" not in seen.chunks  # no empty deliveries while waiting for the network


def test_chunked_reader_keeps_the_order_of_full_size_reads_and_pending_data() -> None:
    """A read of a whole ``chunk_size`` is passed on directly only when nothing
    smaller is pending; otherwise it joins the pending data, in order.  With
    ``chunk_size=16`` the socket is also read 16 bytes at a time: 16 header
    paddings put the reads at every alignment."""
    first, second = b"0123456789abcdef", b"ghijklmnopqrstuv" * 3
    for pad in range(16):
        seen = _Deliveries()
        request = _NATIVE_CHUNKED.replace(b"\r\n\r\n", b"\r\nX-Pad: %s\r\n\r\n" % (b"p" * pad))
        with _tornado_server(_recorder_app(seen), chunk_size=16) as port:
            head, body = _native_exchange(port, request + _chunked(first, b"hello", second))
        assert status_of(head) == 200
        assert body == first + b"hello" + second, pad
        assert all(0 < len(chunk) <= 16 for chunk in seen.chunks), seen.chunks


def test_many_small_chunks_are_coalesced_into_few_deliveries() -> None:
    """1000 one-byte chunks arriving together reach the handler in a few
    ``data_received`` calls, not one each (Tornado's bound on delivery overhead).
    Over 256 of them also make the reader yield to the IOLoop (``_CHUNK_YIELD_COST``)."""
    seen = _Deliveries()
    parts = [bytes([65 + i % 26]) for i in range(1000)]
    with _tornado_server(_recorder_app(seen)) as port:
        head, body = _native_exchange(port, _NATIVE_CHUNKED + _chunked(*parts))
    assert status_of(head) == 200 and body == b"".join(parts)
    assert 0 < len(seen.chunks) < 100, len(seen.chunks)


@pytest.mark.parametrize(
    ("parts", "chunk_size"),
    [([b"a"] * 1000, 256), ([b"b" * 2048] * 100, 256)],
    ids=["tiny-chunks", "2KiB-chunks"],
)
def test_chunked_reader_yields_to_the_ioloop_while_parsing(
    parts: list[bytes], chunk_size: int
) -> None:
    """A body that has arrived faster than it is parsed does not hold the IOLoop:
    the reader yields every ``_YIELD_THRESHOLD`` bytes of work (each chunk counting
    ``_CHUNK_YIELD_COST`` more), so other callbacks run between its deliveries."""
    seen = _Deliveries(ticking=True)
    with _tornado_server(_recorder_app(seen), chunk_size=chunk_size) as port:
        head, body = _native_exchange(port, _NATIVE_CHUNKED + _chunked(*parts))
    assert status_of(head) == 200 and body == b"".join(parts)
    assert len(set(seen.ticks)) > 1, "every delivery came in the same IOLoop turn"


def test_yielding_does_not_slow_a_large_chunked_upload() -> None:
    """The yields give other callbacks one IOLoop turn (``asyncio.sleep(0)``), no
    more: 2000 small chunks then 1 MiB in 64 KiB chunks (about 12 yields) arrive in
    well under a second (generous bound: 3 s; a one-second pause per yield fails)."""
    seen = _Deliveries()
    parts = [b"x" * 10] * 2000 + [b"y" * 65536] * 16
    with _tornado_server(_recorder_app(seen)) as port:
        start = time.monotonic()
        head, body = _native_exchange(port, _NATIVE_CHUNKED + _chunked(*parts))
        elapsed = time.monotonic() - start
    assert status_of(head) == 200 and len(body) == 20_000 + 16 * 65536
    assert elapsed < 3, elapsed


class _EchoBody(tornado.web.RequestHandler):
    def post(self) -> None:
        self.write(self.request.body)


@pytest.mark.parametrize(
    ("parts", "status"),
    [
        ([b"hello", b"world"], 200),  # exactly max_body_size
        ([b"hello", b"world!"], 400),
        ([b"abcd", b"efgh", b"ijkl"], 400),  # each chunk under the limit, the sum over it
    ],
)
def test_chunked_body_limit_counts_all_chunks_on_native_routes(
    parts: list[bytes], status: int
) -> None:
    """``max_body_size`` bounds the de-chunked body (RFC 9112 §7.1) on native routes,
    where the chunked reader's own check is the only one."""
    app = tornado.web.Application([(r"/rec", _EchoBody)])
    with _tornado_server(app, max_body_size=10) as port:
        head, body = _native_exchange(port, _NATIVE_CHUNKED + _chunked(*parts))
    assert status_of(head) == status
    if status == 200:
        assert body == b"".join(parts)


@pytest.mark.parametrize("size_line", [b"5\r", b"5X", b"5\x0b"], ids=["cr", "letter", "vt"])
def test_chunk_size_line_with_stray_characters_is_a_400(size_line: bytes) -> None:
    """Only spaces and tabs may follow the chunk size (before ``;`` extensions); a
    bare CR, a letter or another whitespace makes the size invalid."""
    request = CHUNKED_HEAD.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
    request += size_line + b"\r\nhello\r\n0\r\n\r\n"
    with BridgeServer(apps.read_body) as server, server.raw() as sock:
        sock.sendall(request)
        data, closed = read_until_close(sock, 5)
    assert closed and status_of(data) == 400, data


# ------------------------------------------------- trailer section: the max_header_size budget
_TRAILER_LIMIT = 4096


def _with_trailers(trailers: bytes) -> bytes:
    head = CHUNKED_HEAD.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
    return head + b"5\r\nhello\r\n0\r\n" + trailers


def test_trailer_section_of_exactly_max_header_size_is_accepted() -> None:
    """Fields of ``max_header_size - 2`` bytes plus the blank line: exactly the limit."""
    field = b"X-Pad: " + b"a" * (_TRAILER_LIMIT - 2 - 9) + b"\r\n"
    assert len(field) + 2 == _TRAILER_LIMIT
    kwargs = {"max_header_size": _TRAILER_LIMIT}
    with BridgeServer(apps.read_body, server_kwargs=kwargs) as server, server.raw() as sock:
        sock.sendall(_with_trailers(field + b"\r\n"))
        data, closed = read_until_close(sock, 5)
    assert closed and status_of(data) == 200, data
    assert data.endswith(b"\nhello")


def test_many_small_trailer_fields_are_bounded_in_total() -> None:
    """The budget is for the whole trailer section, not per field line."""
    fields = b"X-A: 1\r\n" * (_TRAILER_LIMIT // 8 + 10)
    kwargs = {"max_header_size": _TRAILER_LIMIT}
    with BridgeServer(apps.read_body, server_kwargs=kwargs) as server, server.raw() as sock:
        sock.sendall(_with_trailers(fields + b"\r\n"))
        data, closed = read_until_close(sock, 5)
    assert closed
    assert b"hello" not in data  # the application never got the request


def test_trailer_field_that_never_ends_closes_the_connection() -> None:
    """A field line with no end is not buffered past ``max_header_size``: the
    connection closes once the budget is read, without waiting for a line end."""
    kwargs = {"max_header_size": _TRAILER_LIMIT}
    with BridgeServer(apps.read_body, server_kwargs=kwargs) as server, server.raw() as sock:
        sock.sendall(_with_trailers(b"X-Pad: " + b"a" * (2 * _TRAILER_LIMIT)))  # no CRLF
        data, closed = read_until_close(sock, 5)
    assert closed
    assert b"hello" not in data


# ------------------------------------------------- observe_response
class _Observer:
    """A :class:`~wsgi_bridge.http1.ResponseObserver` that records what it sees."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def on_headers(
        self, start_line: tornado.httputil.ResponseStartLine, headers: tornado.httputil.HTTPHeaders
    ) -> None:
        self.events.append(("headers", start_line.code))
        headers["X-Observed"] = "yes"  # observers may add a header

    def on_data(self, chunk: bytes) -> None:
        self.events.append(("data", chunk))

    def on_finish(self) -> None:
        self.events.append(("finish",))


class _ObservedHandler(tornado.web.RequestHandler):
    def initialize(self, observers: list[_Observer], accepted: list[bool]) -> None:
        self.observers = observers
        self.accepted = accepted

    async def get(self) -> None:
        for observer in self.observers:
            self.accepted.append(observe_response(self.request, observer))
        self.write(b"first")
        await self.flush()  # the head and "first" go out through write_headers
        self.write(b"second")  # and this through write(), when the handler finishes


def test_observe_response_sees_head_each_body_chunk_and_the_end() -> None:
    observers = [_Observer(), _Observer()]
    accepted: list[bool] = []
    app = tornado.web.Application(
        [(r"/observed", _ObservedHandler, {"observers": observers, "accepted": accepted})]
    )
    with _tornado_server(app) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/observed")
        response = conn.getresponse()
        body = response.read()
        conn.close()
        assert wait_for(lambda: all(o.events[-1:] == [("finish",)] for o in observers))
    assert accepted == [True, True]
    assert (response.status, body) == (200, b"firstsecond")
    assert response.headers["X-Observed"] == "yes"
    for observer in observers:
        assert observer.events == [
            ("headers", 200),
            ("data", b"first"),
            ("data", b"second"),
            ("finish",),
        ]


def test_observe_response_declines_a_connection_that_is_not_this_modules() -> None:
    """A request whose connection is not ``wsgi_bridge.http1``'s (a test double, a
    plain Tornado server) is not observed: ``False``, nothing attached."""
    context = SimpleNamespace(address=("10.0.0.1", 1), remote_ip="10.0.0.1", protocol="http")
    double: Any = SimpleNamespace(context=context)
    request = tornado.httputil.HTTPServerRequest(
        start_line=tornado.httputil.RequestStartLine("GET", "/", "HTTP/1.1"),
        headers=tornado.httputil.HTTPHeaders({"Host": "t"}),
        connection=double,
    )
    assert observe_response(request, _Observer()) is False
    assert not hasattr(double, "_observers")


# ---------------------------------------- awaiting_request and linger_close, on real sockets
def _tcp_pair() -> tuple[socket.socket, socket.socket]:
    """A connected TCP pair on 127.0.0.1: ``(server side, client side)``."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname()[:2], timeout=5)
        server_side, _ = listener.accept()
    return server_side, client


def _until_readable(sock: socket.socket) -> None:
    """Wait (up to 5 s) until the kernel has something for ``sock``: bytes, EOF or an error."""
    assert select.select([sock], [], [], 5)[0]


def test_awaiting_request_counts_bytes_in_the_kernel_but_not_an_end_or_a_reset() -> None:
    """:meth:`HTTP1Connection.awaiting_request` (what ``close_connections`` closes by):
    a byte the kernel holds is a request under way; the client's end of stream or a
    reset is not (nothing to serve)."""

    async def scenario() -> None:
        for ending in ("eof", "reset"):
            server_side, client = _tcp_pair()
            with client:
                stream = IOStream(server_side)
                conn = HTTP1Connection(stream, False)
                assert conn.awaiting_request()
                client.sendall(b"G")  # nothing reads it: the IOLoop does not run here
                _until_readable(server_side)
                assert not conn.awaiting_request()
                assert server_side.recv(1) == b"G"
                assert conn.awaiting_request()
                if ending == "reset":
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    client.close()
                else:
                    client.shutdown(socket.SHUT_WR)
                _until_readable(server_side)
                assert conn.awaiting_request(), ending
                stream.close()

    asyncio.run(scenario())


def test_awaiting_request_after_a_head_read_and_once_closed() -> None:
    """A head read that completed (the size check has not resumed yet) is a request
    under way; a closed connection never is, even with unread bytes left."""

    async def scenario() -> None:
        server_side, client = _tcp_pair()
        with client:
            head: Future[bytes] = Future()
            head.set_result(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            stream = IOStream(server_side)
            assert not HTTP1Connection(stream, False, next_head=head).awaiting_request()
            conn = HTTP1Connection(stream, False)
            unread(stream, b"GE")
            assert not conn.awaiting_request()
            stream.close()
            assert conn.awaiting_request()

    asyncio.run(scenario())


def test_linger_close_discards_up_to_max_bytes_then_closes() -> None:
    """``linger_close``: writes are shut down at once; what the peer sends is read and
    dropped until ``max_bytes`` (the connection stays open below it), then closed."""

    async def scenario() -> None:
        ours, peer = socket.socketpair()
        read: list[int] = []

        class CountingStream(IOStream):
            async def read_bytes(self, num_bytes: int, partial: bool = False) -> bytes:
                data = await super().read_bytes(num_bytes, partial)
                read.append(len(data))
                return data

        async def until_read(total: int) -> None:
            for _ in range(500):
                if sum(read) >= total:
                    return
                await asyncio.sleep(0.01)
            raise AssertionError(f"read {sum(read)} of {total} bytes")

        with peer:
            stream = CountingStream(ours)
            lingering = asyncio.ensure_future(linger_close(stream, seconds=30, max_bytes=100))
            await asyncio.sleep(0)
            peer.settimeout(5)
            assert peer.recv(10) == b""  # our write side is shut down: the peer sees EOF
            for size, total in ((60, 60), (39, 99)):
                peer.sendall(b"x" * size)
                await until_read(total)
                assert not stream.closed(), total  # below max_bytes: still lingering
            peer.sendall(b"x")  # the 100th byte
            await asyncio.wait_for(lingering, 5)
            assert stream.closed() and sum(read) == 100

    asyncio.run(scenario())


class _ObservedFallback(WSGIFallbackHandler):
    """The WSGI fallback with an observer on each response (as the service's canary)."""

    observer = _Observer()

    def prepare(self) -> None:
        observe_response(self.request, self.observer)
        super().prepare()


def _streamed_app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])  # no length: chunked
    yield b"one" * 50_000
    yield b"two" * 50_000


def test_observe_response_sees_a_chunked_wsgi_response() -> None:
    """The bridge frames a chunked body itself (``report_body``): observers see each chunk."""
    _ObservedFallback.observer = observer = _Observer()
    with BridgeServer(_streamed_app, handler=_ObservedFallback) as server:
        status, headers, body = server.request("GET", "/x")
        assert wait_for(lambda: observer.events[-1:] == [("finish",)])
    assert (status, body) == (200, b"one" * 50_000 + b"two" * 50_000)
    assert headers["X-Observed"] == "yes"
    data = [event[1] for event in observer.events if event[0] == "data"]
    assert b"".join(data) == body


# ---------------------------------- Tornado's interfaces kept (constructor, delegates, client)
class _ContextHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        request = self.request
        self.write(
            {
                "server_connection": type(request.server_connection).__name__,
                "protocol": request.protocol,
                "remote_ip": request.remote_ip,
            }
        )


def test_server_keeps_tornados_protocol_trusted_downstream_and_server_connection() -> None:
    """``HTTPServer`` takes Tornado's ``protocol`` and ``trusted_downstream`` (with
    ``xheaders``) and gives each request its ``server_connection``, as Tornado's does."""
    app = tornado.web.Application([(r"/context", _ContextHandler)])
    with _tornado_server(
        app, protocol="https", xheaders=True, trusted_downstream=["10.0.0.1"]
    ) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/context", headers={"X-Forwarded-For": "1.2.3.4, 10.0.0.1"})
        seen = json.loads(conn.getresponse().read())
        conn.close()
    assert seen == {
        "server_connection": "HTTP1ServerConnection",
        "protocol": "https",
        "remote_ip": "1.2.3.4",  # 10.0.0.1 is a trusted downstream hop
    }


@pytest.mark.parametrize(("pad", "status"), [(0, 200), (1, 431)])
def test_head_of_exactly_max_header_size_is_served(pad: int, status: int) -> None:
    """A header section of exactly ``max_header_size`` bytes (blank line included)
    fits; one byte more gets 431."""
    start = b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-A: "
    head = start + b"a" * (1024 - len(start) - 4 + pad) + b"\r\n\r\n"
    assert len(head) == 1024 + pad
    with BridgeServer(apps.hello, server_kwargs={"max_header_size": 1024}) as server:
        data, _ = exchange(server, head)
    assert status_of(data) == status


class _Recorder(tornado.httputil.HTTPMessageDelegate):
    """Records one message; as a server's delegate, answers it with ``204``."""

    def __init__(self, respond: HTTP1Connection | None = None) -> None:
        self.respond = respond
        self.start_line: Any = None
        self.body = b""

    def headers_received(
        self,
        start_line: tornado.httputil.RequestStartLine | tornado.httputil.ResponseStartLine,
        headers: tornado.httputil.HTTPHeaders,
    ) -> None:
        self.start_line = start_line

    def data_received(self, chunk: bytes) -> None:
        self.body += chunk

    def finish(self) -> None:
        if self.respond is not None:
            start_line = tornado.httputil.ResponseStartLine("HTTP/1.1", 204, "No Content")
            self.respond.write_headers(start_line, tornado.httputil.HTTPHeaders())
            self.respond.finish()


def test_as_a_client_the_connection_behaves_as_tornados() -> None:
    """``HTTP1Connection(stream, is_client=True)`` writes a request and reads the
    response to it, as Tornado's (the module's edges are server side only)."""

    async def scenario() -> tuple[bytes, int, bytes]:
        server_side, client_side = _tcp_pair()
        with server_side:
            server_side.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
            conn = HTTP1Connection(IOStream(client_side), True)
            start_line = tornado.httputil.RequestStartLine("GET", "/c", "HTTP/1.1")
            await conn.write_headers(start_line, tornado.httputil.HTTPHeaders({"Host": "t"}))
            conn.finish()
            recorder = _Recorder()
            assert await asyncio.wait_for(conn.read_response(recorder), 5)
            conn.close()
            sent = server_side.recv(65536)
        return sent, recorder.start_line.code, recorder.body

    sent, code, body = asyncio.run(scenario())
    assert sent.startswith(b"GET /c HTTP/1.1\r\n")
    assert (code, body) == (200, b"hi")


def test_a_connection_made_directly_times_its_head_by_params_header_timeout() -> None:
    """Made without ``head_timeout`` (not by :class:`HTTP1ServerConnection`), a server
    connection waits ``params.header_timeout`` for a head, then closes; with no
    timeout at all it waits until the head arrives."""

    async def scenario() -> tuple[bool, bool, str]:
        server_side, client_side = _tcp_pair()
        with client_side:
            params = tornado.http1connection.HTTP1ConnectionParameters(header_timeout=0.05)
            conn = HTTP1Connection(IOStream(server_side), False, params)
            timed_out = await asyncio.wait_for(conn.read_response(_Recorder()), 5)
            closed = conn.stream.closed()
        server_side, client_side = _tcp_pair()
        with client_side:
            conn = HTTP1Connection(IOStream(server_side), False)
            recorder = _Recorder(conn)
            reading = asyncio.ensure_future(conn.read_response(recorder))
            await asyncio.sleep(0)  # the head read is pending: nothing was sent yet
            assert not reading.done()
            client_side.sendall(b"GET /late HTTP/1.1\r\nHost: t\r\n\r\n")
            assert await asyncio.wait_for(reading, 5)
            conn.close()
        return timed_out, closed, recorder.start_line.path

    assert asyncio.run(scenario()) == (False, True, "/late")


def test_server_connection_serves_a_delegate_that_is_not_this_modules_server() -> None:
    """:class:`HTTP1ServerConnection` serves any Tornado delegate (here an
    ``Application`` with no ``HTTPServer``): there is no server to drain then."""
    app = tornado.web.Application([(r"/native", _HelloHandler)])

    async def scenario() -> bytes:
        server_side, client_side = _tcp_pair()
        HTTP1ServerConnection(IOStream(server_side)).start_serving(app)
        client = IOStream(client_side)
        await client.write(b"GET /native HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        return await asyncio.wait_for(client.read_until_close(), 5)

    data = asyncio.run(scenario())
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"hello")


class _BrokenStream(IOStream):
    """An ``IOStream`` whose reads fail with an unexpected exception."""

    def read_until_regex(self, regex: bytes, max_bytes: int | None = None) -> Any:
        raise RuntimeError("broken read")


def test_an_uncaught_exception_closes_the_connection_and_is_logged() -> None:
    """An unexpected exception while serving a connection closes it (the client is
    not left waiting) and is logged at ERROR with its traceback."""

    async def scenario() -> bytes:
        server_side, client_side = _tcp_pair()
        app = tornado.web.Application([(r"/native", _HelloHandler)])
        HTTP1ServerConnection(_BrokenStream(server_side)).start_serving(app)
        client = IOStream(client_side)
        await client.write(b"GET /native HTTP/1.1\r\nHost: t\r\n\r\n")
        return await asyncio.wait_for(client.read_until_close(), 5)

    with capture_logs("tornado.general") as logs:
        assert asyncio.run(scenario()) == b""
    errors = [r for r in logs.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None
    assert str(errors[0].exc_info[1]) == "broken read"


@tornado.web.stream_request_body
class _AnswersFirst(tornado.web.RequestHandler):
    """Answers ``400`` before reading the request body."""

    def prepare(self) -> None:
        self.set_status(400)
        self.finish("early")

    def data_received(self, chunk: bytes) -> None:
        pass


class _CountingDelegate(tornado.httputil.HTTPServerConnectionDelegate):
    """Counts ``start_request`` calls; ``closed`` is set by ``on_close``."""

    def __init__(self, app: tornado.web.Application) -> None:
        self.app = app
        self.started = 0
        self.closed = asyncio.Event()

    def start_request(
        self, server_conn: object, request_conn: tornado.httputil.HTTPConnection
    ) -> tornado.httputil.HTTPMessageDelegate:
        self.started += 1
        return self.app.start_request(server_conn, request_conn)

    def on_close(self, server_conn: object) -> None:
        self.closed.set()


@pytest.mark.parametrize("ending", ["head timeout", "head refused", "lingering close"])
def test_a_connection_that_ended_starts_no_further_request(ending: str) -> None:
    """After a head timeout, a refused (431) head or a lingering close the
    connection's loop ends: its delegate's ``start_request`` ran once, for the one
    request (Tornado's contract: once per request that started)."""

    async def scenario() -> int:
        loop = asyncio.get_running_loop()
        server_side, client = _tcp_pair()
        client.setblocking(False)
        counting = _CountingDelegate(tornado.web.Application([(r"/early", _AnswersFirst)]))
        params = tornado.http1connection.HTTP1ConnectionParameters(
            header_timeout=0.05 if ending == "head timeout" else 5, max_header_size=1024
        )
        HTTP1ServerConnection(IOStream(server_side), params).start_serving(counting)
        with client:
            if ending == "head refused":
                await loop.sock_sendall(
                    client, b"GET / HTTP/1.1\r\nX-A: " + b"a" * 2000 + b"\r\n\r\n"
                )
            elif ending == "lingering close":
                head = b"POST /early HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n"
                await loop.sock_sendall(client, head)
            while await asyncio.wait_for(loop.sock_recv(client, 65536), 5):
                pass  # the response, if any, then the server's end of stream
            if ending == "lingering close":
                await loop.sock_sendall(client, b"hello")  # the body, after the response
        await asyncio.wait_for(counting.closed.wait(), 5)
        return counting.started

    assert asyncio.run(scenario()) == 1


def test_request_loop_only_yields_between_keep_alive_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Between two requests on a keep-alive connection the request loop yields to the
    IOLoop (``asyncio.sleep(0)``, as Tornado's loop does) and never waits: a wait
    there would delay every next request on the connection."""
    real_sleep = asyncio.sleep
    delays: list[float] = []

    async def recording_sleep(delay: float, result: Any = None) -> Any:
        delays.append(delay)
        return await real_sleep(delay, result)

    monkeypatch.setattr(asyncio, "sleep", recording_sleep)
    app = tornado.web.Application([(r"/native", _HelloHandler)])

    async def scenario() -> bytes:
        server_side, client_side = _tcp_pair()
        HTTP1ServerConnection(IOStream(server_side)).start_serving(app)
        client = IOStream(client_side)
        await client.write(b"GET /native HTTP/1.1\r\nHost: t\r\n\r\n")
        first = await asyncio.wait_for(client.read_until(b"hello"), 5)
        await client.write(b"GET /native HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        return first + await asyncio.wait_for(client.read_until_close(), 5)

    assert asyncio.run(scenario()).count(b"HTTP/1.1 200 OK\r\n") == 2
    assert delays and set(delays) == {0}
