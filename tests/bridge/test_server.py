"""Behaviour of the bridge over real sockets (numbers refer to docs/wsgi-bridge.md)."""

from __future__ import annotations

import concurrent.futures
import contextvars
import json
import logging
import os
import re
import socket
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any

import pytest

from tests.bridge import apps
from tests.bridge.kinds import BOTH, MOUNTS
from wsgi_bridge import CLIENT_DISCONNECTED_KEY, WSGIContainer
from wsgi_bridge.access_log import ACCESS_FIELDS, access_log_function
from wsgi_bridge.compat import executor_max_workers, request_read_finished, server_connections
from wsgi_bridge.container import DEFAULT_QUEUE_PER_WORKER, default_worker_count
from wsgi_bridge.errors import ClientDisconnected, RequestBodyTooLarge
from wsgi_bridge.exchange import Exchange
from wsgi_bridge.mount import ROUTE_ENVIRON_KEY
from wsgi_bridge.pump import ResponsePump
from wsgi_bridge.request_id import current_request_id
from wsgi_bridge.testing import (
    BridgeServer,
    capture_logs,
    header_value,
    read_response_head,
    read_until_close,
    status_of,
    wait_for,
)


def raw_get(sock: socket.socket, path: str = "/", method: str = "GET", extra: str = "") -> None:
    sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n".encode("latin-1"))


# ------------------------------------------------------------------ 1. never hangs
ERROR_APPS = [
    apps.raise_before_start,
    apps.never_start,
    apps.raise_after_start,
    apps.crlf_header,
    apps.non_latin1_header,
    apps.bad_header_name,
    apps.non_iterable,
    apps.yields_str,
    apps.bad_status,
    apps.second_start_response,
]


@BOTH
@pytest.mark.parametrize("app", ERROR_APPS, ids=lambda a: a.__name__)
def test_app_error_gives_500_logged_once_then_serves_next(kind: str, app: Any) -> None:
    with BridgeServer(app, kind=kind) as server, capture_logs("wsgi_bridge") as logs:
        status, headers, body = server.request("GET", "/x", timeout=5)
        assert status == 500
        assert body == b"Internal Server Error\n"
        assert headers["X-Request-ID"]
        assert "Injected" not in headers
        errors = [r for r in logs.records if r.levelname == "ERROR"]
        assert len(errors) == 1 and errors[0].exc_info is not None
        # It names the request, as the client's X-Request-ID does, to find one by the other.
        assert errors[0].getMessage() == (
            f"error in WSGI application for GET /x (id={headers['X-Request-ID']})"
        )
        # The next request on a new connection is served too.
        assert server.request("GET", "/x", timeout=5)[0] == 500
        assert server.request("GET", "/native", timeout=5)[0] == 200


@BOTH
def test_error_after_first_chunk_closes_connection(kind: str) -> None:
    with BridgeServer(apps.yield_then_raise, kind=kind) as server, capture_logs("wsgi_bridge"):
        with server.raw() as sock:
            raw_get(sock)
            data, closed = read_until_close(sock, 5)
        assert closed, "connection must be closed, not left hanging"
        assert data.startswith(b"HTTP/1.1 200 ")
        assert b"first chunk" in data
        assert not data.endswith(b"0\r\n\r\n"), "a truncated body must not look complete"
        assert server.request("GET", "/native")[0] == 200


@MOUNTS
def test_error_after_the_written_chunks_still_closes_connection(kind: str) -> None:
    """The app raises after everything it yielded was already written (no write
    pending on the IOLoop): the bridge still closes the connection, and the slot
    comes back (``BridgeServer`` checks ``in_flight`` on leaving)."""
    written = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"first chunk"
        assert written.wait(10)
        raise RuntimeError("boom after the flush")

    with BridgeServer(app, kind=kind) as server, capture_logs("wsgi_bridge"):
        with server.raw() as sock:
            raw_get(sock)
            data = b""
            while b"first chunk" not in data:
                more = sock.recv(65536)
                assert more, "closed before the first chunk"
                data += more
            written.set()
            rest, closed = read_until_close(sock, 5)
        assert closed, "connection must be closed, not left hanging"
        assert not (data + rest).endswith(b"0\r\n\r\n"), "a truncated body must not look complete"


@BOTH
def test_app_error_on_head_is_a_bodyless_500_and_the_connection_stays_usable(kind: str) -> None:
    """The bridge's own 500 follows the request's framing: HEAD gets the GET's head
    (``500 Internal Server Error``, ``Content-Length``) and no body, and the next
    request on the same connection is served."""
    with BridgeServer(apps.raise_before_start, kind=kind) as server, capture_logs("wsgi_bridge"):
        with server.raw() as sock:
            raw_get(sock, "/x", method="HEAD")
            head, rest = read_response_head(sock, 5)
            assert head.split(b"\r\n", 1)[0] == b"HTTP/1.1 500 Internal Server Error"
            assert header_value(head, "Content-Length") == str(len(b"Internal Server Error\n"))
            assert rest == b""
            raw_get(sock, "/x", extra="Connection: close\r\n")
            data, closed = read_until_close(sock, 5)
        assert closed
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.split(b"\r\n", 1)[0] == b"HTTP/1.1 500 Internal Server Error"
        assert body == b"Internal Server Error\n", "the HEAD response carried a body"


def write_after_disconnect(
    outcome: list[str], started: threading.Event, done: threading.Event
) -> Any:
    """An app that writes one chunk, waits until the client left, then writes again.

    ``outcome`` gets what ``write(b"more")`` raised (polled: the exchange sets the
    event a moment before the response learns the connection is gone), then what
    ``write(b"")`` did.  With ``then_raise`` in ``environ["QUERY_STRING"]`` the app
    finally raises ``RuntimeError`` (an error after the client left).
    """

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        try:
            write = start_response("200 OK", [("Content-Type", "text/plain")])
            write(b"first\n")
            started.set()
            assert environ[CLIENT_DISCONNECTED_KEY].wait(10)
            deadline = time.monotonic() + 5
            while True:
                try:
                    write(b"more\n")
                except ClientDisconnected as exc:
                    outcome.append(f"ClientDisconnected({exc})")
                    break
                if time.monotonic() > deadline:
                    outcome.append("write() never raised")
                    break
                time.sleep(0.01)
            try:
                write(b"")
                outcome.append("empty write ignored")
            except Exception as exc:
                outcome.append(f"empty write raised {exc!r}")
            if environ["QUERY_STRING"] == "then_raise":
                raise RuntimeError("the view failed after the client left")
            return []
        finally:
            done.set()

    return app


@MOUNTS
def test_legacy_write_raises_client_disconnected_once_the_client_left(kind: str) -> None:
    """``write()`` after the client went away raises ``ClientDisconnected("client
    disconnected")`` (as ``wsgi.input`` reads do), so a view writing in a loop stops;
    ``write(b"")`` sends nothing and never raises."""
    outcome: list[str] = []
    started, done = threading.Event(), threading.Event()
    app = write_after_disconnect(outcome, started, done)
    with BridgeServer(app, kind=kind) as server, capture_logs("wsgi_bridge"):
        with server.raw() as sock:
            raw_get(sock)
            head, _ = read_response_head(sock, 5)
            assert status_of(head) == 200
            assert started.wait(5)
        assert done.wait(10)
    assert outcome == ["ClientDisconnected(client disconnected)", "empty write ignored"]


@MOUNTS
def test_an_error_after_the_client_left_is_logged_as_stopped_not_as_an_app_error(
    kind: str,
) -> None:
    """Once the client is gone nobody gets a 500: whatever the app then raises is
    logged once at INFO as a stopped request, without traceback, not as an ERROR."""
    outcome: list[str] = []
    started, done = threading.Event(), threading.Event()
    app = write_after_disconnect(outcome, started, done)
    with BridgeServer(app, kind=kind) as server, capture_logs("wsgi_bridge") as logs:
        with server.raw() as sock:
            raw_get(sock, "/?then_raise")
            head, _ = read_response_head(sock, 5)
            assert status_of(head) == 200
            assert started.wait(5)
        assert done.wait(10)
        assert wait_for(lambda: server.call(lambda: server.container.in_flight) == 0)
    assert outcome[0] == "ClientDisconnected(client disconnected)"
    assert [r for r in logs.records if r.levelno >= logging.WARNING] == []
    stopped = [r for r in logs.records if "stopped" in r.getMessage()]
    assert len(stopped) == 1 and stopped[0].levelno == logging.INFO
    assert stopped[0].exc_info is None


def test_container_as_bare_httpserver_callback() -> None:
    with BridgeServer(apps.generator_stream, kind="bridge-server") as server:
        assert server.request("GET", "/")[2] == b"chunk0;chunk1;chunk2;"
        status, _, body = server.request("HEAD", "/")
        assert (status, body) == (200, b"")
    with (
        BridgeServer(apps.raise_before_start, kind="bridge-server") as server,
        capture_logs("wsgi_bridge"),
    ):
        assert server.request("GET", "/")[0] == 500


# ------------------------------------------------------- 2. one thread, one context
def test_one_thread_one_context_close_once() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    seen: list[tuple[int, str]] = []
    closes: list[int] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            for i in range(3):
                seen.append((threading.get_ident(), var.get()))
                yield b"%d" % i

        def close(self) -> None:
            seen.append((threading.get_ident(), var.get()))
            closes.append(1)

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        var.set(environ["PATH_INFO"])
        seen.append((threading.get_ident(), var.get()))
        start_response("200 OK", [])
        return Body()

    with BridgeServer(app) as server:
        assert server.request("GET", "/ctx")[2] == b"012"
        assert wait_for(lambda: closes == [1])
    assert len({tid for tid, _ in seen}) == 1
    assert {value for _, value in seen} == {"/ctx"}
    assert len(seen) == 5


@BOTH
def test_flask_stream_with_context(kind: str) -> None:
    with BridgeServer(apps.make_flask_app(), kind=kind) as server:
        status, _, body = server.request("GET", "/stream?q=7")
    assert status == 200 and body == b"path=/stream;args=7"


# ------------------------------------------------------------- 3. streaming responses
def test_first_chunk_leaves_before_the_generator_continues() -> None:
    release = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"first"
        release.wait(10)
        yield b"second"

    with BridgeServer(app) as server, server.raw() as sock:
        raw_get(sock)
        head, rest = read_response_head(sock, 5)
        assert header_value(head, "Transfer-Encoding") == "chunked"
        while b"first" not in rest:
            rest += sock.recv(4096)
        assert rest.startswith(b"5\r\nfirst\r\n")
        release.set()
        data, _ = read_until_close_or_terminator(sock)
        assert (rest + data).endswith(b"6\r\nsecond\r\n0\r\n\r\n")


def read_until_close_or_terminator(sock: socket.socket) -> tuple[bytes, bool]:
    sock.settimeout(5)
    data = bytearray()
    while not data.endswith(b"0\r\n\r\n"):
        chunk = sock.recv(65536)
        if not chunk:
            return bytes(data), True
        data += chunk
    return bytes(data), False


def test_http10_stream_is_close_delimited() -> None:
    with BridgeServer(apps.generator_stream) as server, server.raw() as sock:
        sock.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        data, closed = read_until_close(sock, 5)
    assert closed
    head, _, body = data.partition(b"\r\n\r\n")
    assert header_value(head, "Transfer-Encoding") is None
    assert body == b"chunk0;chunk1;chunk2;"


@BOTH
def test_backpressure_bounds_buffered_output(kind: str, tracker: apps.Tracker) -> None:
    buffer_size = 256 * 1024
    with BridgeServer(
        tracker.endless(65536), kind=kind, response_buffer_size=buffer_size
    ) as server:
        with server.raw() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            raw_get(sock)
            assert tracker.started.wait(5)
            # The client reads nothing; production must stop at about buffer + socket buffers.
            last = -1
            deadline = time.monotonic() + 10
            while tracker.chunks != last and time.monotonic() < deadline:
                last = tracker.chunks
                time.sleep(0.3)
            produced = tracker.chunks * 65536
            assert produced < 64 * 1024 * 1024, produced
            assert not tracker.closed.is_set()
        # 5. blocked on backpressure, the client leaves: close() runs, thread returns.
        assert tracker.closed.wait(5)
        assert server.call(lambda: server.container.in_flight) == 0 or wait_for(
            lambda: server.call(lambda: server.container.in_flight) == 0
        )


def test_file_wrapper_streams_and_closes() -> None:
    with BridgeServer(apps.file_wrapper_app) as server:
        status, _headers, body = server.request("GET", "/")
    assert status == 200 and body == b"x" * 200_000


def test_legacy_write_callable() -> None:
    with BridgeServer(apps.legacy_write) as server:
        assert server.request("GET", "/")[2] == b"written then returned"


def test_legacy_write_rejects_str_with_a_type_error_naming_the_type() -> None:
    """``write()`` takes bytes only (PEP 3333); a ``str`` is a ``TypeError`` that says
    what was passed."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [])
        try:
            write("text")
        except TypeError as exc:
            return [str(exc).encode()]
        return [b"accepted"]

    with BridgeServer(app) as server:
        assert server.request("GET", "/")[2] == b"write() expects bytes, not str"


# ------------------------------------------------------------ 4. streaming uploads
def chunked_post(sock: socket.socket, path: str, pieces: list[bytes], extra: str = "") -> None:
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n{extra}\r\n".encode()
    )
    for piece in pieces:
        sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
    sock.sendall(b"0\r\n\r\n")


def response_body(data: bytes) -> bytes:
    head, _, body = data.partition(b"\r\n\r\n")
    if header_value(head, "Transfer-Encoding") == "chunked":
        out = bytearray()
        while body:
            size_line, _, body = body.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                break
            out += body[:size]
            body = body[size + 2 :]
        return bytes(out)
    return body


@BOTH
def test_chunked_upload_reaches_flask_dechunked(kind: str) -> None:
    with BridgeServer(apps.make_flask_app(), kind=kind) as server, server.raw() as sock:
        chunked_post(sock, "/length", [b"hello", b" world"], "Connection: close\r\n")
        data, _ = read_until_close(sock, 5)
    assert data.startswith(b"HTTP/1.1 200")
    assert response_body(data) == b"11"


def test_chunked_upload_environ() -> None:
    with BridgeServer(apps.read_body) as server, server.raw() as sock:
        chunked_post(sock, "/", [b"abc", b"def"], "Connection: close\r\n")
        data, _ = read_until_close(sock, 5)
    assert response_body(data).startswith(b"6 cl=None term=True\nabcdef")


@MOUNTS
def test_upload_is_streamed_to_the_app_while_it_arrives(kind: str) -> None:
    first_read = threading.Event()
    total: list[int] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        stream = environ["wsgi.input"]
        got = len(stream.read(1000))
        first_read.set()
        while piece := stream.read(65536):
            got += len(piece)
        total.append(got)
        start_response("200 OK", [])
        return [str(got).encode()]

    size = 1024 * 1024
    with BridgeServer(app, kind, request_buffer_size=64 * 1024) as server, server.raw() as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % size)
        sock.sendall(b"a" * (size // 2))
        # The app reads before the client sent the second half: it was streamed.
        assert first_read.wait(5)
        sock.sendall(b"a" * (size // 2))
        head, _rest = read_response_head(sock, 5)
        assert status_of(head) == 200
    assert total == [size]


def test_read_larger_than_request_buffer() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        data = environ["wsgi.input"].read(100_000)
        start_response("200 OK", [])
        return [str(len(data)).encode()]

    with BridgeServer(app, request_buffer_size=1024) as server:
        assert server.request("POST", "/", body=b"q" * 150_000)[2] == b"100000"


@MOUNTS
@pytest.mark.parametrize(("size", "buffered"), [(1024, True), (1025, False)])
def test_body_of_up_to_request_buffer_size_is_read_before_the_app(
    kind: str, size: int, buffered: bool
) -> None:
    """A body of up to request_buffer_size bytes is read whole first (a BufferedInput);
    one byte more and the app starts on a streaming wsgi.input."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        wsgi_input = environ["wsgi.input"]
        data = wsgi_input.read()
        start_response("200 OK", [])
        return [f"{type(wsgi_input).__name__} {len(data)}".encode()]

    with BridgeServer(app, kind, request_buffer_size=1024) as server:
        body = server.request("POST", "/", body=b"q" * size)[2]
    assert body == f"{'BufferedInput' if buffered else 'StreamingInput'} {size}".encode()


@pytest.mark.parametrize(("size", "buffered"), [(1, True), (2, False)])
def test_request_buffer_size_zero_still_buffers_one_byte(size: int, buffered: bool) -> None:
    """``request_buffer_size=0`` means a pipe of one byte (it cannot be empty): a
    one-byte body is read whole first, a two-byte body streams."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        wsgi_input = environ["wsgi.input"]
        data = wsgi_input.read()
        start_response("200 OK", [])
        return [f"{type(wsgi_input).__name__} {len(data)}".encode()]

    with BridgeServer(app, request_buffer_size=0) as server:
        body = server.request("POST", "/", body=b"q" * size)[2]
    assert body == f"{'BufferedInput' if buffered else 'StreamingInput'} {size}".encode()


@MOUNTS
def test_early_response_without_reading_upload_does_not_hang(kind: str) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("400 Bad Request", [])
        return [b"no thanks"]

    with BridgeServer(app, kind, request_buffer_size=1024) as server, server.raw() as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n\r\n")
        sock.sendall(b"x" * 100_000)
        data, closed = read_until_close(sock, 5)
        assert data.startswith(b"HTTP/1.1 400 ") and data.endswith(b"no thanks")
        assert closed
        assert wait_for(lambda: server.call(lambda: server.container.in_flight) == 0)


def test_readline_and_readlines() -> None:
    with BridgeServer(apps.read_lines) as server:
        body = server.request("POST", "/", body=b"one\ntwo\nthree\nfour")[2]
    assert body == repr((b"one\n", b"two", [b"\n", b"three\n", b"four"], b"")).encode()


@MOUNTS
def test_content_length_over_max_body_size_is_413_before_app(kind: str) -> None:
    called: list[int] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        called.append(1)
        start_response("200 OK", [])
        return [b""]

    with BridgeServer(app, kind, max_body_size=1000) as server, server.raw() as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n")
        data, closed = read_until_close(sock, 5)
    assert data.startswith(b"HTTP/1.1 413 ")
    head = data.partition(b"\r\n\r\n")[0]
    assert header_value(head, "Content-Type") == "text/plain; charset=utf-8"
    names = sorted(line.split(b":")[0].lower() for line in head.split(b"\r\n")[1:])
    assert names == [b"connection", b"content-length", b"content-type", b"date", b"x-request-id"]
    assert closed and called == []


@BOTH
def test_a_whole_body_over_max_body_size_is_413_and_closes_the_connection(kind: str) -> None:
    """Also when the client sent the whole body (and under Tornado's plain
    ``FallbackHandler``, which read it first): ``413 Request Entity Too Large``,
    ``Connection: close``, and the server closes; the app never runs."""
    called: list[int] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        called.append(1)
        start_response("200 OK", [])
        return [b""]

    with BridgeServer(app, kind, max_body_size=1000) as server, server.raw() as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000)
        data, closed = read_until_close(sock, 5)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.split(b"\r\n", 1)[0] == b"HTTP/1.1 413 Request Entity Too Large"
    assert header_value(head, "Connection") == "close"
    assert body == b"Request Entity Too Large\n"
    assert closed and called == []


@pytest.mark.parametrize("kind", ["bridge-plain", "bridge-server"])
def test_read_body_over_max_body_size_is_413_without_a_streaming_mount(kind: str) -> None:
    """Under Tornado's ``FallbackHandler`` or as ``HTTPServer(container)`` Tornado reads
    the body first; the container then still applies ``max_body_size``: one byte over
    gets ``413 Request Entity Too Large`` and ``Connection: close`` without the app,
    exactly ``max_body_size`` (and no body at all) reaches the app."""
    bodies: list[bytes] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        bodies.append(environ["wsgi.input"].read())
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    with BridgeServer(app, kind, max_body_size=3) as server:
        with server.raw() as sock:
            sock.sendall(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nabcd")
            data, closed = read_until_close(sock, 5)
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413 Request Entity Too Large\r\n")
        assert header_value(head, "Connection") == "close" and closed
        assert body == b"Request Entity Too Large\n" and bodies == []
        assert server.request("POST", "/x", body=b"abc")[::2] == (200, b"ok")
        assert server.request("GET", "/x")[::2] == (200, b"ok")
    assert bodies == [b"abc", b""]


def echo_body(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Answer with the request body the app read from ``wsgi.input``."""
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


@MOUNTS
def test_a_one_byte_upload_reaches_the_app(kind: str) -> None:
    """``Content-Length: 1`` is a body (the smallest one): its byte reaches ``wsgi.input``."""
    with BridgeServer(echo_body, kind) as server:
        assert server.request("POST", "/x", body=b"!")[::2] == (200, b"!")


@MOUNTS
def test_max_body_size_zero_refuses_bodies_only(kind: str) -> None:
    """With ``max_body_size=0`` requests without a body (none, ``Content-Length: 0``)
    are served, one byte gets 413, and an invalid ``Content-Length`` still gets
    Tornado's own 400 (the bridge takes it for no body, never for one too large)."""
    with BridgeServer(echo_body, kind, max_body_size=0) as server:
        assert server.request("GET", "/x")[::2] == (200, b"")
        assert server.request("POST", "/x", body=b"")[::2] == (200, b"")
        assert server.request("POST", "/x", body=b"!")[0] == 413
        with server.raw() as sock:
            sock.sendall(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: nope\r\n\r\n")
            data, closed = read_until_close(sock, 5)
        assert closed and data.startswith(b"HTTP/1.1 400 ")
        assert server.request("GET", "/x")[::2] == (200, b"")


@MOUNTS
def test_bridge_404_outside_script_name_keeps_the_connection(kind: str) -> None:
    """A request without a body that the bridge answers itself (404 outside
    ``script_name``) is answered after Tornado read it whole, so the keep-alive
    connection stays open for the next request."""
    with BridgeServer(apps.hello, kind, script_name="/app") as server, server.raw() as sock:
        raw_get(sock, "/elsewhere")
        head, body = read_response_head(sock, 5)
        assert head.startswith(b"HTTP/1.1 404 Not Found\r\n")
        assert header_value(head, "Connection") is None
        while len(body) < int(header_value(head, "Content-Length") or 0):
            body += sock.recv(65536)
        raw_get(sock, "/app/x")
        head, _ = read_response_head(sock, 5)
        assert status_of(head) == 200


@MOUNTS
def test_bridge_max_body_size_replaces_the_servers_limit(kind: str) -> None:
    """For bridge requests the connection's limit is raised to ``2 * max_body_size + 1``
    (docs: "Interplay with HTTPServer(max_body_size=...)"): a body above the server's
    limit but within the bridge's is served, a chunk of exactly ``2 * max_body_size + 1``
    bytes still gets the bridge's 413, one byte more Tornado's own 400."""

    def chunked(size: int) -> bytes:
        return (
            b"POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            + f"{size:x}\r\n".encode()
            + b"y" * size
            + b"\r\n0\r\n\r\n"
        )

    with BridgeServer(
        echo_body, kind, max_body_size=100, server_kwargs={"max_body_size": 10}
    ) as server:
        assert server.request("POST", "/x", body=b"x" * 100)[::2] == (200, b"x" * 100)
        assert server.request("POST", "/x", body=b"x" * 101)[0] == 413
        for size, status in ((201, 413), (202, 400)):
            with server.raw() as sock, capture_logs("wsgi_bridge"):
                sock.sendall(chunked(size))
                data, closed = read_until_close(sock, 5)
            assert closed and status_of(data) == status, (size, data[:40])


@MOUNTS
def test_chunked_upload_outgrowing_max_body_size_is_stopped(kind: str) -> None:
    read_error: list[BaseException] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        try:
            while environ["wsgi.input"].read(1024):
                pass
        except OSError as exc:
            read_error.append(exc)
            raise
        start_response("200 OK", [])
        return [b"read it all"]

    with BridgeServer(app, kind, max_body_size=100_000, request_buffer_size=8192) as server:
        with server.raw() as sock, capture_logs("wsgi_bridge"):
            sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
            try:
                for _ in range(40):
                    sock.sendall(b"1000\r\n" + b"b" * 4096 + b"\r\n")
            except OSError:
                pass  # the server may already have closed
            data, closed = read_until_close(sock, 5)
        assert data.startswith(b"HTTP/1.1 413 Request Entity Too Large\r\n")
        assert closed
        assert wait_for(lambda: len(read_error) == 1)
        # The documented error, not the disconnect that follows the 413.
        assert type(read_error[0]) is RequestBodyTooLarge
        assert str(read_error[0]) == "request body exceeds max_body_size"
        assert server.request("GET", "/native")[0] == 200


@MOUNTS
def test_upload_outgrowing_max_body_size_after_the_response_began_closes_it(kind: str) -> None:
    """Once the response has begun there is no 413: the connection is closed at once,
    cutting the response short, and the app's read raises RequestBodyTooLarge."""
    read_error: list[BaseException] = []
    started = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"started\n"
        started.set()
        try:
            while environ["wsgi.input"].read(1024):
                pass
        except OSError as exc:
            read_error.append(exc)
        yield b"after the error\n"  # too late: the connection is gone

    chunk = b"1000\r\n" + b"b" * 4096 + b"\r\n"
    with BridgeServer(app, kind, max_body_size=100_000, request_buffer_size=8192) as server:
        with server.raw() as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
            sock.sendall(chunk * 3)  # over request_buffer_size: the app starts
            assert started.wait(5)
            try:
                for _ in range(40):
                    sock.sendall(chunk)
            except OSError:
                pass  # the server may already have closed
            data, closed = read_until_close(sock, 5)
        assert closed
        assert status_of(data) == 200 and b"started\n" in data
        assert b"after the error" not in data
        assert not data.endswith(b"0\r\n\r\n")  # the chunked body never ended
        assert wait_for(lambda: len(read_error) == 1)
        assert type(read_error[0]) is RequestBodyTooLarge
        assert server.request("GET", "/native")[0] == 200


@MOUNTS
def test_upload_past_the_limit_after_the_close_is_still_read_not_reset(kind: str) -> None:
    """After the connection was closed for an upload over max_body_size (the response had
    begun), the rest of the upload is still read and dropped (lingering close) while the
    application runs on, instead of being answered with a reset."""
    started = threading.Event()
    failed = threading.Event()
    release = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"started\n"
        started.set()
        try:
            while environ["wsgi.input"].read(1024):
                pass
        except OSError:
            failed.set()
            release.wait(10)  # still running while the rest of the upload arrives
            raise

    def request_state() -> str:
        assert server.http_server is not None
        connections = server_connections(server.http_server)
        if not connections:
            return "closed"
        (connection,) = connections
        return "read" if request_read_finished(connection.current) else "reading"

    chunk = b"1000\r\n" + b"b" * 4096 + b"\r\n"
    with BridgeServer(app, kind, max_body_size=100_000, request_buffer_size=8192) as server:
        try:
            with server.raw() as sock:
                sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
                sock.sendall(chunk * 3)
                assert started.wait(5)
                sock.sendall(chunk * 25)  # 28 x 4096 bytes: over max_body_size
                assert failed.wait(5)
                data, eof = read_until_close(sock, 5)  # the server's write side is shut
                assert eof and b"started\n" in data
                sock.sendall(chunk * 4 + b"0\r\n\r\n")  # the rest, to the last chunk
                assert wait_for(lambda: server.call(request_state) != "reading")
                assert server.call(request_state) == "read"  # not closed on the next chunk
        finally:
            release.set()


@MOUNTS
def test_empty_chunked_body_reads_as_empty(kind: str) -> None:
    with BridgeServer(apps.read_body, kind) as server, server.raw() as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n0\r\n\r\n"
        )
        data, closed = read_until_close(sock, 5)
    assert closed and status_of(data) == 200
    assert data.endswith(b"\r\n\r\n0 cl=None term=True\n"), data


# ------------------------------------------------------------ 5. client disconnect
@BOTH
def test_disconnect_mid_stream_closes_iterable_promptly(kind: str, tracker: apps.Tracker) -> None:
    with BridgeServer(tracker.slow_stream(50, 0.1), kind=kind) as server:
        with server.raw() as sock:
            raw_get(sock)
            assert tracker.started.wait(5)
            assert wait_for(lambda: tracker.chunks >= 3)  # mid-stream
        # "within about a second" of the disconnect (measured 0.001-0.1 s), plus margin.
        assert tracker.closed.wait(1.5), "close() not within about 1 s of the disconnect"
        assert tracker.close_count == 1
        assert tracker.chunks < 50
        assert wait_for(lambda: server.call(lambda: server.container.in_flight) == 0)


# ------------------------------------------------------------------- 6. overload
@MOUNTS
def test_overload_gets_503_at_once_and_native_keeps_answering(
    kind: str, tracker: apps.Tracker
) -> None:
    with BridgeServer(tracker.blocking(), kind, workers=2, max_queue=1, retry_after=7) as server:
        conns = []
        try:
            for i in range(3):
                conn = server.http()
                conn.request("GET", f"/slow{i}")
                conns.append(conn)
                assert wait_for(
                    lambda i=i: server.call(lambda: server.container.in_flight) == i + 1
                )
            t0 = time.monotonic()
            status, headers, _ = server.request("GET", "/overflow")
            assert status == 503 and headers["Retry-After"] == "7"
            assert time.monotonic() - t0 < 2
            assert server.request("GET", "/native")[2] == b"native"
            assert tracker.chunks == 2  # the 3rd waits in the queue, the 4th never ran
            tracker.release.set()
            bodies = [c.getresponse().read() for c in conns]
            assert bodies == [b"/slow0", b"/slow1", b"/slow2"]
        finally:
            tracker.release.set()
            for conn in conns:
                conn.close()


def test_a_shut_down_executor_gets_503_retry_after_and_a_closed_connection() -> None:
    """When the pool refuses the job (shut down), the client gets ``503 Service
    Unavailable`` with ``Retry-After`` and ``Connection: close``, and the slot is
    released."""
    with BridgeServer(apps.hello, retry_after=7) as server:
        assert server.executor is not None
        server.executor.shutdown(wait=True)
        with server.raw() as sock:
            raw_get(sock)
            data, closed = read_until_close(sock, 5)
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.split(b"\r\n", 1)[0] == b"HTTP/1.1 503 Service Unavailable"
        assert header_value(head, "Retry-After") == "7"
        assert header_value(head, "Connection") == "close"
        assert body == b"Service Unavailable\n" and closed
        assert wait_for(lambda: server.call(lambda: server.container.in_flight) == 0)


def test_requests_are_served_in_arrival_order() -> None:
    order: list[str] = []
    gate = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        order.append(environ["PATH_INFO"])
        if environ["PATH_INFO"] == "/first":
            gate.wait(10)
        start_response("200 OK", [])
        # Several chunks: chunks must never be re-queued behind later requests.
        for _ in range(5):
            yield b"x"

    with BridgeServer(app, workers=1, max_queue=10) as server:
        conns = []
        try:
            for i, name in enumerate(["first", "a", "b", "c", "d"]):
                conn = server.http()
                conn.request("GET", f"/{name}")
                conns.append(conn)
                assert wait_for(
                    lambda i=i: server.call(lambda: server.container.in_flight) == i + 1
                )
            gate.set()
            assert [c.getresponse().read() for c in conns] == [b"xxxxx"] * 5
        finally:
            gate.set()
            for conn in conns:
                conn.close()
    assert order == ["/first", "/a", "/b", "/c", "/d"]


def test_max_queue_is_a_hard_cap_of_64_per_worker() -> None:
    with concurrent.futures.ThreadPoolExecutor(3) as executor:
        container = WSGIContainer(apps.hello, executor, max_workers=3)
        assert (container.max_workers, container.max_queue) == (3, 3 * DEFAULT_QUEUE_PER_WORKER)
        assert DEFAULT_QUEUE_PER_WORKER == 64
        assert container.admission_limit == 3 + 192 == container.admission.limit
        assert WSGIContainer(apps.hello, executor, max_workers=3, max_queue=0).admission_limit == 3
        assert WSGIContainer(apps.hello, executor, max_queue=None).max_queue == 192


def test_worker_count_comes_from_the_caller_then_the_executor() -> None:
    with concurrent.futures.ThreadPoolExecutor(3) as executor:
        # The caller's configuration wins over whatever the executor says.
        assert WSGIContainer(apps.hello, executor, max_workers=5).max_workers == 5
        # Drop-in form WSGIContainer(app, executor): read from the executor (compat).
        assert WSGIContainer(apps.hello, executor).max_workers == 3
    own = WSGIContainer(apps.hello)
    try:
        assert own.max_workers == default_worker_count()
        assert own.max_queue == DEFAULT_QUEUE_PER_WORKER * default_worker_count()
    finally:
        own.close()
    sized = WSGIContainer(apps.hello, max_workers=2)
    try:
        assert (sized.max_workers, sized.admission_limit) == (2, 2 + 128)
    finally:
        sized.close()
    with pytest.raises(ValueError, match="max_workers"):
        WSGIContainer(apps.hello, max_workers=0)


@pytest.mark.parametrize(("cpus", "threads"), [(None, 5), (1, 5), (8, 12), (28, 32), (64, 32)])
def test_default_worker_count_is_thread_pool_executors_rule(
    monkeypatch: pytest.MonkeyPatch, cpus: int | None, threads: int
) -> None:
    """``default_worker_count()`` = ``min(32, cpu + 4)``, one CPU when unknown: for any
    CPU count the same as ``ThreadPoolExecutor``'s own default, and the size of the
    container's own pool."""
    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    monkeypatch.setattr(os, "process_cpu_count", lambda: cpus, raising=False)  # 3.13+
    assert default_worker_count() == threads
    with concurrent.futures.ThreadPoolExecutor() as pool:
        assert executor_max_workers(pool) == threads
    own = WSGIContainer(apps.hello)
    try:
        assert own.max_workers == threads
    finally:
        own.close()


def test_close_waits_for_its_own_pool_and_leaves_a_callers_alone() -> None:
    """``close()`` shuts the container's own executor down and returns only once the
    job running on it has ended; a caller's executor keeps working."""
    own = WSGIContainer(apps.hello, max_workers=1)
    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    def job() -> None:
        started.set()
        release.wait(10)
        finished.set()

    own.executor.submit(job)
    assert started.wait(5)
    releaser = threading.Timer(0.2, release.set)  # close() must wait this long at least
    releaser.start()
    own.close()
    assert finished.is_set(), "close() returned while the pool's job still ran"
    releaser.join()
    with pytest.raises(RuntimeError):
        own.executor.submit(job)
    with concurrent.futures.ThreadPoolExecutor(1) as shared:
        WSGIContainer(apps.hello, shared).close()
        assert shared.submit(lambda: 7).result(5) == 7


def test_own_pool_has_max_workers_threads_named_wsgi_bridge() -> None:
    """Without an executor the container creates a pool of ``max_workers`` threads
    named ``wsgi-bridge`` (docs: ``executor`` option)."""
    own = WSGIContainer(apps.hello, max_workers=2)
    try:
        assert executor_max_workers(own.executor) == 2
        name = own.executor.submit(lambda: threading.current_thread().name).result(5)
        assert re.fullmatch(r"wsgi-bridge_\d+", name), name
    finally:
        own.close()


@pytest.mark.parametrize(
    "option", ["max_queue", "max_body_size", "response_buffer_size", "request_buffer_size"]
)
def test_negative_size_option_is_refused_by_name(option: str) -> None:
    """A negative size is a ``ValueError`` naming the option and the value given."""
    options: dict[str, Any] = {option: -1}
    with (
        concurrent.futures.ThreadPoolExecutor(1) as executor,
        pytest.raises(ValueError, match=rf"^{option} must be >= 0, got -1$"),
    ):
        WSGIContainer(apps.hello, executor, **options)


@pytest.mark.parametrize(("given", "kept"), [("/app/", "/app"), ("/FAX//", "/FAX"), ("/", "")])
def test_script_name_loses_only_its_trailing_slashes(given: str, kept: str) -> None:
    """``script_name`` is kept without trailing ``/`` (``/app/`` mounts at ``/app``);
    nothing else is stripped."""
    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        assert WSGIContainer(apps.hello, executor, script_name=given).script_name == kept


def test_script_name_without_a_leading_slash_is_refused() -> None:
    """``script_name`` must be a path: ``"app"`` is a ``ValueError`` that quotes it."""
    with (
        concurrent.futures.ThreadPoolExecutor(1) as executor,
        pytest.raises(ValueError, match=r"^script_name must start with '/': 'app'$"),
    ):
        WSGIContainer(apps.hello, executor, script_name="app/")


def test_container_repr_names_its_app_and_sizes() -> None:
    """``repr()`` (for debugging) shows the application and the sizes in use."""
    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        container = WSGIContainer(apps.hello, executor, max_workers=1, max_queue=3)
        assert container.application is apps.hello
        assert repr(container).startswith(f"<WSGIContainer {apps.hello!r} workers=1 max_queue=3 ")


# ------------------------------------------------------------------- 7. environ, PEP 3333
@BOTH
def test_a_request_without_a_body_reads_an_empty_wsgi_input(kind: str) -> None:
    """A GET has a ``wsgi.input`` too (PEP 3333), at EOF from the start."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        stream = environ["wsgi.input"]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [repr((stream.read(), stream.readline(), stream.read(10))).encode()]

    with BridgeServer(app, kind=kind) as server:
        assert server.request("GET", "/")[::2] == (200, b"(b'', b'', b'')")


def test_environ_over_socket() -> None:
    with BridgeServer(apps.echo_environ) as server, server.raw() as sock:
        sock.sendall(
            b"GET /a%20b/%E2%82%AC?q=%20x HTTP/1.1\r\nHost: h:81\r\nX_Evil: 1\r\n"
            b"X-Request-ID: abc\r\nConnection: close\r\n\r\n"
        )
        data, _ = read_until_close(sock, 5)
    body = response_body(data).decode()
    assert f"PATH_INFO={'/a b/' + bytes([0xE2, 0x82, 0xAC]).decode('latin-1')!r}" in body
    assert "QUERY_STRING='q=%20x'" in body
    assert "REQUEST_URI='/a%20b/%E2%82%AC?q=%20x'" in body
    assert "SERVER_PORT='81'" in body
    assert "REMOTE_ADDR='127.0.0.1'" in body
    assert "HTTP_X_REQUEST_ID='abc'" in body
    assert "X_EVIL" not in body
    assert header_value(data.partition(b"\r\n\r\n")[0], "X-Request-ID") == "abc"


@BOTH
def test_start_response_exc_info_replaces_response(kind: str) -> None:
    with BridgeServer(apps.exc_info_replace, kind=kind) as server:
        status, _, body = server.request("GET", "/")
    assert (status, body) == (500, b"custom error page")


def test_start_response_exc_info_after_headers_reraises() -> None:
    with BridgeServer(apps.exc_info_after_sent) as server, capture_logs("wsgi_bridge") as logs:
        with server.raw() as sock:
            raw_get(sock)
            data, closed = read_until_close(sock, 5)
        assert closed and b"partial" in data and b"never" not in data
        assert wait_for(lambda: any("too late" in str(r.exc_info) for r in logs.records))
        # Re-raised with its own traceback: the log shows where the app's error began.
        record = next(r for r in logs.records if "too late" in str(r.exc_info))
        assert record.exc_info is not None
        logged = "".join(traceback.format_exception(*record.exc_info))
        assert 'raise ValueError("too late")' in logged


class ListClosingWithAnError(list[bytes]):
    """A list body (so nothing is sent before ``close()``) whose ``close()`` raises."""

    def close(self) -> None:
        raise RuntimeError("close() broke")


def close_raises(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ListClosingWithAnError([b"fine"])


@BOTH
def test_close_that_raises_is_a_500_logged_once(kind: str) -> None:
    """``close()`` raising before anything was sent is an app error like any other:
    a 500, and one ERROR record carrying that exception."""
    with BridgeServer(close_raises, kind=kind) as server, capture_logs("wsgi_bridge") as logs:
        status, _, body = server.request("GET", "/")
        assert (status, body) == (500, b"Internal Server Error\n")
        assert wait_for(lambda: server.call(lambda: server.container.in_flight) == 0)
    errors = [r for r in logs.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None and "close() broke" in str(errors[0].exc_info[1])


class FailingThenWritingFromClose:
    """An iterable that raises at its first ``next()``, and whose ``close()`` then
    calls the legacy ``write()``: cleanup code that reports on the same response."""

    def __init__(self, write: Any) -> None:
        self.write = write
        self.write_outcome = "not called"

    def __iter__(self) -> Any:
        return self

    def __next__(self) -> bytes:
        raise RuntimeError("the view broke")

    def close(self) -> None:
        try:
            self.write(b"cleanup note")
            self.write_outcome = "returned"
        except Exception as exc:  # recorded for the test, not swallowed silently
            self.write_outcome = repr(exc)


@BOTH
def test_write_from_close_after_the_apps_own_error_is_dropped(kind: str) -> None:
    """After the bridge answered the app's error with its 500, a ``write()`` from
    ``close()`` sends nothing and raises nothing: the client gets the plain 500 and
    the log holds the one ERROR of the app's exception (not a second one)."""
    made: list[FailingThenWritingFromClose] = []

    def app(environ: dict[str, Any], start_response: Any) -> FailingThenWritingFromClose:
        made.append(FailingThenWritingFromClose(start_response("200 OK", [])))
        return made[-1]

    with BridgeServer(app, kind=kind) as server, capture_logs("wsgi_bridge") as logs:
        status, _, body = server.request("GET", "/")
        assert (status, body) == (500, b"Internal Server Error\n")
        assert wait_for(lambda: server.call(lambda: server.container.in_flight) == 0)
    assert made[0].write_outcome == "returned"
    errors = [r for r in logs.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None and "the view broke" in str(errors[0].exc_info[1])


# --------------------------------------------------------------------- 8. framing
@BOTH
def test_head_gets_headers_no_body_and_connection_is_reusable(kind: str) -> None:
    with BridgeServer(apps.head_no_length, kind=kind) as server:
        conn = server.http()
        try:
            conn.request("HEAD", "/")
            resp = conn.getresponse()
            assert resp.status == 200 and resp.read() == b""
            assert resp.headers["Content-Length"] == "5"
            conn.request("GET", "/")
            assert conn.getresponse().read() == b"12345"
        finally:
            conn.close()


def test_head_on_streaming_response_is_reusable() -> None:
    with BridgeServer(apps.generator_stream) as server, server.raw() as sock:
        raw_get(sock, method="HEAD")
        head, rest = read_response_head(sock, 5)
        assert status_of(head) == 200 and rest == b""
        assert header_value(head, "Transfer-Encoding") is None
        raw_get(sock, extra="Connection: close\r\n")
        data, _ = read_until_close(sock, 5)
        assert response_body(data) == b"chunk0;chunk1;chunk2;"


@pytest.mark.parametrize("app", [apps.status_204, apps.status_304], ids=["204", "304"])
def test_no_body_statuses_are_not_framed(app: Any) -> None:
    with BridgeServer(app) as server, server.raw() as sock:
        raw_get(sock)
        head, rest = read_response_head(sock, 5)
        assert rest == b""
        assert header_value(head, "Transfer-Encoding") is None
        if status_of(head) == 204:
            assert header_value(head, "Content-Length") is None
        raw_get(sock, "/again", extra="Connection: close\r\n")
        data, closed = read_until_close(sock, 5)
        assert closed and data.startswith(b"HTTP/1.1 " + head[9:12])


def test_content_length_is_never_contradicted() -> None:
    with BridgeServer(apps.too_long_body) as server:
        conn = server.http()
        try:
            conn.request("GET", "/")
            assert conn.getresponse().read() == b"12345"
            conn.request("GET", "/")  # still framed correctly: same connection works
            assert conn.getresponse().read() == b"12345"
        finally:
            conn.close()


def whole_body_past_its_length(environ: dict[str, Any], start_response: Any) -> Any:
    """``Content-Length: 5`` and a longer body known at once: a list, or an iterator
    whose first chunk is already too long (both take the whole-body path)."""
    start_response("200 OK", [("Content-Length", "5")])
    if environ["PATH_INFO"] == "/list":
        return [b"123", b"456789"]
    return iter([b"123456789", b"never reached"])


@pytest.mark.parametrize("path", ["/list", "/iterator"])
def test_a_whole_body_longer_than_content_length_is_cut_to_it(path: str) -> None:
    with BridgeServer(whole_body_past_its_length) as server:
        conn = server.http()
        try:
            for _ in range(2):  # still framed correctly: the same connection works
                conn.request("GET", path)
                assert conn.getresponse().read() == b"12345"
        finally:
            conn.close()


def test_short_body_closes_connection() -> None:
    with (
        BridgeServer(apps.too_short_body) as server,
        capture_logs("wsgi_bridge"),
        server.raw() as sock,
    ):
        raw_get(sock)
        data, closed = read_until_close(sock, 5)
    assert closed and data.endswith(b"\r\n\r\n123")


def test_short_body_is_logged_with_the_request_and_marked_aborted() -> None:
    """Too few bytes for the app's Content-Length: the close is logged on ``wsgi_bridge``
    (one ERROR naming method, target, request id and Tornado's reason) and the access
    line marks the response ``aborted`` (an error after the headers)."""
    with (
        BridgeServer(apps.too_short_body) as server,
        capture_logs("tornado.access") as access,
        capture_logs("wsgi_bridge") as logs,
    ):
        with server.raw() as sock:
            raw_get(sock, "/short?q=1", extra="X-Request-ID: short-1\r\n")
            assert read_until_close(sock, 5)[1]
        assert wait_for(lambda: any("/short" in m for m in access.messages()))
    errors = [r for r in logs.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        "response to GET /short?q=1 could not be completed (id=short-1): "
        "Tried to write 7 bytes less than Content-Length"
    ]
    (record,) = [r for r in access.records if "/short" in r.getMessage()]
    assert record.getMessage().endswith("side=wsgi aborted")
    assert record.__dict__["aborted"] is True


@MOUNTS
def test_repeated_response_headers_all_reach_the_client(kind: str) -> None:
    """Every occurrence of a repeated header (two ``Set-Cookie``) goes out, in order,
    on the streaming path and on the whole-body fast path."""

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response(
            "200 OK",
            [("Set-Cookie", "a=1"), ("Content-Type", "text/plain"), ("Set-Cookie", "b=2")],
        )
        if environ["PATH_INFO"] == "/stream":
            return iter([b"s"])
        return [b"w"]

    with BridgeServer(app, kind) as server:
        for path in ("/stream", "/whole"):
            status, headers, _ = server.request("GET", path)
            assert status == 200
            assert headers.get_all("Set-Cookie") == ["a=1", "b=2"], path


def test_app_transfer_encoding_chunked_not_double_encoded() -> None:
    with BridgeServer(apps.app_chunked) as server:
        _status, headers, body = server.request("GET", "/")
    assert body == b"abcdef" and headers["Transfer-Encoding"] == "chunked"


def test_hop_by_hop_headers_dropped_connection_close_honoured() -> None:
    with BridgeServer(apps.hop_by_hop) as server, capture_logs("wsgi_bridge") as logs:
        _status, headers, _ = server.request("GET", "/")
        assert headers["Keep-Alive"] is None and headers["Upgrade"] is None
        assert headers["X-Ok"] == "1"
        assert len([m for m in logs.messages() if "hop-by-hop" in m]) == 2
    with BridgeServer(apps.connection_close) as server, server.raw() as sock:
        raw_get(sock)
        data, closed = read_until_close(sock, 5)
    assert closed and header_value(data.partition(b"\r\n\r\n")[0], "Connection") == "close"


# ---------------------------------------------------------------------- 9. mounting
def read_exact(sock: socket.socket, data: bytes, n: int) -> bytes:
    """``n`` bytes: ``data`` already read, then more from ``sock``."""
    while len(data) < n:
        more = sock.recv(65536)
        assert more, "closed early"
        data += more
    return data


def test_bridge_own_answer_has_request_id_status_line_and_keeps_the_connection() -> None:
    """The bridge's own 404 (outside ``script_name``) is a response like the others:
    ``X-Request-ID`` sent back, its status line, no body on HEAD, and the keep-alive
    connection serves the next request; the access log has its line."""
    with (
        capture_logs("tornado.access") as access,
        BridgeServer(apps.hello, script_name="/app") as server,
        server.raw() as sock,
    ):
        raw_get(sock, "/elsewhere", extra="X-Request-ID: own-404\r\n")
        head, rest = read_response_head(sock)
        assert head.startswith(b"HTTP/1.1 404 Not Found\r\n")
        assert header_value(head, "X-Request-ID") == "own-404"
        assert header_value(head, "Connection") is None
        assert read_exact(sock, rest, 10) == b"Not Found\n"
        raw_get(sock, "/elsewhere", method="HEAD")
        head, rest = read_response_head(sock)
        assert status_of(head) == 404 and header_value(head, "Content-Length") == "10"
        assert rest == b""
        raw_get(sock, "/app/x")
        head, rest = read_response_head(sock)
        assert status_of(head) == 200
        assert read_exact(sock, rest, 5) == b"hello"
        assert wait_for(lambda: len(access.messages()) == 3)
    lines = access.messages()
    assert [line.split()[:3] for line in lines[:2]] == [
        ["GET", "/elsewhere", "404"],
        ["HEAD", "/elsewhere", "404"],
    ]


def test_plain_mode_413_closes_the_connection() -> None:
    """Under Tornado's FallbackHandler the body was read already; the 413 still says
    ``Connection: close`` and closes (the bridge's ``close=True`` answer)."""
    with (
        BridgeServer(apps.hello, kind="bridge-plain", max_body_size=10) as server,
        server.raw() as sock,
    ):
        raw_get(sock, "/x", method="POST", extra="Content-Length: 100\r\n")
        sock.sendall(b"x" * 100)
        data, closed = read_until_close(sock, 5)
    assert closed and status_of(data) == 413
    assert header_value(data.partition(b"\r\n\r\n")[0], "Connection") == "close"


def test_script_name_mount_with_flask() -> None:
    with BridgeServer(apps.make_flask_app(), script_name="/legacy") as server:
        status, _, body = server.request("GET", "/legacy/where")
        info = json.loads(body)
        assert status == 200
        assert info["url_for"] == "/legacy/where"
        assert info["script_root"] == "/legacy" and info["path"] == "/where"
        status, headers, _ = server.request("GET", "/legacy/go")
        assert status == 302 and headers["Location"] == "/legacy/where"
        assert server.request("GET", "/legacyx/where")[0] == 404
        assert server.request("GET", "/where")[0] == 404


def test_trusted_proxy_headers() -> None:
    headers = {
        "X-Forwarded-For": "6.6.6.6, 203.0.113.9",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "public.example",
    }
    with BridgeServer(apps.make_flask_app(), trusted_proxies=["127.0.0.1/32"]) as server:
        info = json.loads(server.request("GET", "/where", headers=headers)[2])
    assert info["remote_addr"] == "203.0.113.9"
    assert info["external"] == "https://public.example/where"
    with BridgeServer(apps.make_flask_app(), trusted_proxies=["10.0.0.0/8"]) as server:
        info = json.loads(server.request("GET", "/where", headers=headers)[2])
    assert info["remote_addr"] == "127.0.0.1"
    assert info["external"].startswith("http://127.0.0.1:")


# --------------------------------------------------------------------- 10. drain
@MOUNTS
def test_drain_waits_for_in_flight_and_rejects_new(kind: str, tracker: apps.Tracker) -> None:
    with BridgeServer(tracker.blocking(), kind) as server:
        conn = server.http()
        try:
            conn.request("GET", "/busy")
            assert tracker.started.wait(5)
            assert server.call(lambda: server.container.in_flight) == 1
            assert server.call(lambda: server.container.drain(0.2)) is False
            status, headers, _ = server.request("GET", "/new")
            assert status == 503 and headers["Retry-After"] == "1"
            assert headers["Connection"] == "close"
            result: list[bool] = []
            waiter = threading.Thread(
                target=lambda: result.append(server.call(lambda: server.container.drain(10)))
            )
            waiter.start()
            tracker.release.set()
            assert conn.getresponse().read() == b"/busy"
            waiter.join(10)
            assert result == [True]
            assert server.call(lambda: server.container.in_flight) == 0
        finally:
            tracker.release.set()
            conn.close()


@MOUNTS
def test_drain_waits_for_the_last_request_not_just_one(kind: str) -> None:
    """``drain()`` returns True only once *no* request is in flight: with two running,
    the end of the first does not end the wait."""
    gates = {"/a": threading.Event(), "/b": threading.Event()}
    running = threading.Semaphore(0)

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        running.release()
        assert gates[environ["PATH_INFO"]].wait(10)
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    with (
        BridgeServer(app, kind, workers=2) as server,
        server.raw() as first,
        server.raw() as second,
    ):
        raw_get(first, "/a")
        raw_get(second, "/b")
        assert running.acquire(timeout=5) and running.acquire(timeout=5)
        result: list[bool] = []
        waiter = threading.Thread(
            target=lambda: result.append(server.call(lambda: server.container.drain(10)))
        )
        waiter.start()
        # drain() marks the container draining and registers its wait in one step.
        assert wait_for(lambda: server.call(lambda: server.container.is_draining()))
        with server.raw() as late:  # a new request while draining: refused, closed
            raw_get(late, "/late")
            refused, closed = read_until_close(late, 5)
        assert refused.startswith(b"HTTP/1.1 503 Service Unavailable\r\n") and closed
        gates["/a"].set()
        assert status_of(read_response_head(first, 5)[0]) == 200
        assert wait_for(lambda: server.call(lambda: server.container.in_flight) == 1)
        waiter.join(0.5)
        assert waiter.is_alive() and result == [], "drain() returned with /b in flight"
        gates["/b"].set()
        assert status_of(read_response_head(second, 5)[0]) == 200
        waiter.join(10)
        assert result == [True]


# --------------------------------------------------------------------- 11. access log
@MOUNTS
def test_access_log_after_response_with_real_status(kind: str) -> None:
    release = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("201 Created", [])
        yield b"abc"
        release.wait(10)
        yield b"de"

    with BridgeServer(app, kind) as server, capture_logs("tornado.access") as logs:
        with server.raw() as sock:
            raw_get(sock, "/made?x=1")
            head, _ = read_response_head(sock, 5)
            time.sleep(0.1)
            assert not [m for m in logs.messages() if "/made" in m], "logged too early"
            release.set()
            read_until_close_or_terminator(sock)
        rid = header_value(head, "X-Request-ID")
        assert wait_for(lambda: any("/made" in m for m in logs.messages()))
        (line,) = [m for m in logs.messages() if "/made" in m]
        assert line.startswith("GET /made?x=1 201 5B ")
        assert line.endswith(f"id={rid} side=wsgi")
        server.request("GET", "/native")
        assert wait_for(lambda: any("side=native" in m for m in logs.messages()))
        (native,) = [m for m in logs.messages() if "side=native" in m]
        assert native.startswith("GET /native 200 6B ")


#: A context variable a view sets (as Flask extensions do), for the leak test below.
_VIEW_VAR: contextvars.ContextVar[str | None] = contextvars.ContextVar("view_var", default=None)


@BOTH
def test_context_a_view_sets_is_gone_for_the_next_request_on_its_thread(kind: str) -> None:
    """Each request's job runs in a copy of the IOLoop's context: a context variable a
    view sets does not reach the next request served by the same (only) worker thread."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen = _VIEW_VAR.get()
        _VIEW_VAR.set(environ["PATH_INFO"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [repr(seen).encode()]

    with BridgeServer(app, kind, workers=1) as server:
        assert server.request("GET", "/first")[::2] == (200, b"None")
        assert server.request("GET", "/second")[::2] == (200, b"None")


@BOTH
def test_request_id_reaches_the_app_and_the_access_record(kind: str) -> None:
    """``environ["wsgi_bridge.request_id"]`` and ``current_request_id`` on the worker,
    ``X-Request-ID`` back, and the structured fields of the access record."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen = {"environ": environ["wsgi_bridge.request_id"], "var": current_request_id.get()}
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(seen).encode()]

    with BridgeServer(app, kind) as server, capture_logs("tornado.access") as logs:
        headers = {"X-Request-ID": "rid-42", "User-Agent": "t/1"}
        status, response, body = server.request("GET", "/seen?q=1", headers=headers)
        assert (status, response["X-Request-ID"]) == (200, "rid-42")
        assert json.loads(body) == {"environ": "rid-42", "var": "rid-42"}
        assert current_request_id.get() is None  # never leaks out of the worker job
        assert wait_for(lambda: any(r.__dict__.get("request_id") == "rid-42" for r in logs.records))
        (record,) = [r for r in logs.records if r.__dict__.get("request_id") == "rid-42"]
        fields = {name: record.__dict__[name] for name in ACCESS_FIELDS}
        assert fields == {
            "request_id": "rid-42",
            "method": "GET",
            "path": "/seen?q=1",
            "status": 200,
            "bytes": len(body),
            "duration_ms": fields["duration_ms"],
            "side": "wsgi",
            "client": "127.0.0.1",
            "user_agent": "t/1",
            "aborted": False,
        }
        assert isinstance(fields["duration_ms"], float)


@MOUNTS
def test_access_log_marks_aborted_response(kind: str) -> None:
    with (
        BridgeServer(apps.yield_then_raise, kind) as server,
        capture_logs("tornado.access") as logs,
    ):
        with capture_logs("wsgi_bridge"), server.raw() as sock:
            raw_get(sock, "/abort")
            read_until_close(sock, 5)
        assert wait_for(lambda: any("/abort" in m for m in logs.messages()))
        (line,) = [m for m in logs.messages() if "/abort" in m]
        assert " 200 " in line and line.endswith("side=wsgi aborted")


@MOUNTS
def test_access_log_marks_a_response_the_client_left_as_aborted(kind: str) -> None:
    """The client leaves after the head and first chunk: the access line keeps the
    real status and says ``aborted``."""

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"first chunk"
        assert environ["wsgi_bridge.client_disconnected"].wait(10)
        yield b"nobody reads this"

    with BridgeServer(app, kind) as server, capture_logs("tornado.access") as logs:
        with server.raw() as sock:
            raw_get(sock, "/gone")
            data = b""
            while b"first chunk" not in data:
                more = sock.recv(65536)
                assert more, "closed before the first chunk"
                data += more
        assert wait_for(lambda: any("/gone" in m for m in logs.messages()))
        (line,) = [m for m in logs.messages() if "/gone" in m]
        assert " 200 " in line and line.endswith("side=wsgi aborted")


@pytest.mark.parametrize("kind", ["bridge-plain", "bridge-server"])
def test_container_access_line_marks_aborted_response_without_a_streaming_mount(
    kind: str,
) -> None:
    """Under Tornado's ``FallbackHandler`` or as ``HTTPServer(container)`` the container
    writes its own access line (``side=wsgi``): the status sent and the ``aborted``
    marker for a response the application broke after its headers."""
    with (
        BridgeServer(apps.yield_then_raise, kind) as server,
        capture_logs("tornado.access") as logs,
    ):
        with capture_logs("wsgi_bridge"), server.raw() as sock:
            raw_get(sock, "/abort")
            read_until_close(sock, 5)

        def ours() -> list[str]:
            return [m for m in logs.messages() if "/abort" in m and "side=wsgi" in m]

        assert wait_for(lambda: bool(ours()))
        (line,) = ours()
        assert " 200 " in line and line.endswith("side=wsgi aborted")


@BOTH
def test_access_line_says_499_when_the_client_left_before_any_status(kind: str) -> None:
    """A client that leaves before the response started gets an access line with 499
    (nginx's "client closed request") and the ``aborted`` marker."""
    started = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        started.set()
        assert environ[CLIENT_DISCONNECTED_KEY].wait(10)
        start_response("200 OK", [])
        return [b"nobody listens"]

    with BridgeServer(app, kind) as server, capture_logs("tornado.access") as logs:
        with server.raw() as sock:
            raw_get(sock, "/gone")
            assert started.wait(5)

        def ours() -> list[str]:
            return [m for m in logs.messages() if "/gone" in m and "side=wsgi" in m]

        assert wait_for(lambda: bool(ours()))
        (line,) = ours()
        assert line.startswith("GET /gone 499 ") and line.endswith(" aborted")


@BOTH
def test_exchange_reports_nothing_sent_then_resolves_done_once_complete(kind: str) -> None:
    """While the application runs, the exchange says status 0, no bytes, not aborted,
    and ``done`` taken then is pending; it resolves once the exchange is complete.  An
    exchange's ``done`` first taken after it completed is resolved already."""
    started = threading.Event()
    release = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/slow":
            started.set()
            assert release.wait(10)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"body"]

    exchanges: dict[str, Exchange] = {}

    with BridgeServer(app, kind) as server:
        container: WSGIContainer = server.container
        start = container.start

        def recording_start(request: Any, *args: Any, **kwargs: Any) -> Exchange | None:
            exchange = start(request, *args, **kwargs)
            if exchange is not None:
                exchanges[request.path] = exchange
            return exchange

        def record() -> None:
            container.start = recording_start  # type: ignore[method-assign]

        server.call(record)
        with server.raw() as sock:
            raw_get(sock, "/slow")
            assert started.wait(5)
            slow = exchanges["/slow"]
            assert server.call(lambda: (slow.status_code, slow.bytes_sent, slow.aborted)) == (
                0,
                0,
                False,
            )
            done = server.call(lambda: slow.done)
            assert not done.done()
            release.set()
            assert status_of(read_response_head(sock, 5)[0]) == 200
            assert wait_for(lambda: server.call(done.done))
            assert server.call(lambda: (slow.status_code, slow.bytes_sent, slow.aborted)) == (
                200,
                4,
                False,
            )
        assert server.request("GET", "/quick")[::2] == (200, b"body")
        assert wait_for(lambda: server.call(lambda: container.in_flight) == 0)
        assert server.call(lambda: exchanges["/quick"].done.done())


def test_fast_mount_log_function_gets_its_side_and_the_apps_route() -> None:
    """``WSGIFallback(side=..., log_function=...)``: the record carries the mount's side
    and the route pattern the app put in ``environ["wsgi_bridge.route"]``; the default
    access line then names that side."""
    records: list[Any] = []

    def log_function(record: Any) -> None:
        records.append(record)
        access_log_function(record)

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ[ROUTE_ENVIRON_KEY] = "/items/<int:item_id>"
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    options = {"side": "flask", "log_function": log_function}
    with (
        BridgeServer(app, "bridge-fast", mount_options=options) as server,
        capture_logs("tornado.access") as logs,
    ):
        assert server.request("GET", "/items/7")[::2] == (200, b"ok")
        assert wait_for(lambda: len(records) == 1)
        (record,) = records
        assert (record.access_log_side, record.route, record.get_status()) == (
            "flask",
            "/items/<int:item_id>",
            200,
        )
        assert wait_for(lambda: any("/items/7" in m for m in logs.messages()))
        (line,) = [m for m in logs.messages() if "/items/7" in m]
        assert line.startswith("GET /items/7 200 2B ") and line.endswith(" side=flask")


# ------------------------------------------- 3. fast path for Werkzeug-style bodies
class _OneChunkThenTrap:
    """Like Werkzeug's ClosingIterator over a finished body: Content-Length is set
    and the first chunk completes it. The bridge must answer from that chunk alone,
    without another next() (which here would fail), and call close() once."""

    def __init__(self) -> None:
        self.nexts = 0
        self.closes = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        return self

    def __iter__(self) -> Any:
        return self

    def __next__(self) -> bytes:
        self.nexts += 1
        if self.nexts == 1:
            return b"hello"
        raise AssertionError("iterated past the declared Content-Length")

    def close(self) -> None:
        self.closes += 1


@BOTH
def test_body_completed_by_first_chunk_is_sent_whole(kind: str) -> None:
    app = _OneChunkThenTrap()
    with BridgeServer(app, kind=kind) as server, capture_logs("wsgi_bridge") as logs:
        status, headers, body = server.request("GET", "/", timeout=5)
        assert (status, body, headers["Content-Length"]) == (200, b"hello", "5")
        assert "Transfer-Encoding" not in headers
        assert wait_for(lambda: app.closes == 1)
        assert app.nexts == 1
        assert [r for r in logs.records if r.levelname == "ERROR"] == []


def test_first_chunk_of_exactly_the_declared_length_takes_the_one_callback_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """docs "Whole bodies take a fast path": an iterable whose first chunk is exactly
    the declared ``Content-Length`` (every non-streamed Flask response) goes out through
    ``ResponsePump.send_whole`` (one IOLoop callback), never chunk by chunk."""
    calls: list[str] = []
    real_send_whole, real_send = ResponsePump.send_whole, ResponsePump.send

    def send_whole(pump: ResponsePump, plan: Any, body: bytes) -> None:
        calls.append("send_whole")
        real_send_whole(pump, plan, body)

    def send(pump: ResponsePump, chunk: bytes) -> bool:
        calls.append("send")
        return real_send(pump, chunk)

    monkeypatch.setattr(ResponsePump, "send_whole", send_whole)
    monkeypatch.setattr(ResponsePump, "send", send)

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        return iter([b"hello"])

    with BridgeServer(app) as server:
        status, headers, body = server.request("GET", "/")
    assert (status, body, headers["Content-Length"]) == (200, b"hello", "5")
    assert calls == ["send_whole"]


def test_only_content_length_declares_the_length_of_a_streamed_body() -> None:
    """Another header of the same name length with a number in it (``X-Items-Number:
    2``) is no declared length: the whole generator is sent, chunked."""

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Items-Number", "2")])
        yield b"hello"
        yield b"world"

    with BridgeServer(app) as server:
        status, headers, body = server.request("GET", "/")
    assert (status, body) == (200, b"helloworld")
    assert headers["Transfer-Encoding"] == "chunked"


def test_content_length_is_counted_across_many_chunks() -> None:
    """The declared length is the sum of all chunks sent: with ``Content-Length: 10``
    and 3-byte chunks the fourth is cut to 1 byte, iteration stops there, and the
    connection stays usable."""
    pulled: list[int] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Length", "10")])
        for index in range(100):
            pulled.append(index)
            yield b"123"

    with BridgeServer(app) as server:
        conn = server.http()
        try:
            for _ in range(2):
                pulled.clear()
                conn.request("GET", "/")
                assert conn.getresponse().read() == b"1231231231"
                assert wait_for(lambda: len(pulled) == 4)
        finally:
            conn.close()
    assert pulled == [0, 1, 2, 3]


def test_empty_chunks_are_skipped_not_taken_for_the_end() -> None:
    """An empty chunk is not the end of the body (PEP 3333): what follows is sent."""

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"a"
        yield b""
        yield b"b"

    with BridgeServer(app) as server:
        assert server.request("GET", "/")[::2] == (200, b"ab")


# -------------------------------- 6. admission slots always come back (no leaks)
BROKEN_UPLOADS = {
    "partial-body-then-close": (
        b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{"
    ),
    "partial-chunked-then-close": (
        b"POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"
    ),
    "content-length-and-chunked": (
        b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    ),
    "invalid-chunk-size": (
        b"POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nhello\r\n"
    ),
    "large-body-then-close": (
        b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 100_000
    ),
}


@BOTH
@pytest.mark.parametrize("payload", BROKEN_UPLOADS.values(), ids=BROKEN_UPLOADS.keys())
def test_broken_or_abandoned_uploads_release_their_slot(kind: str, payload: bytes) -> None:
    with BridgeServer(apps.counting_upload, kind=kind, workers=1, max_queue=0) as server:
        for _ in range(3):  # more than the admission limit (1): a leak would show as 503
            with server.raw() as sock:
                sock.sendall(payload)
                sock.shutdown(socket.SHUT_WR)
                read_until_close(sock, 5)
            assert wait_for(lambda: server.container.in_flight == 0, timeout=5), (
                f"slot leaked: in_flight={server.container.in_flight}"
            )
        status, _, body = server.request("POST", "/upload", body=b"abc")
        assert (status, body) == (200, b"3")
