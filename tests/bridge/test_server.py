"""Behaviour of the bridge over real sockets (numbers refer to docs/wsgi-bridge.md)."""

from __future__ import annotations

import concurrent.futures
import contextvars
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.bridge import apps
from tests.bridge.kinds import BOTH, MOUNTS
from wsgi_bridge import CLIENT_DISCONNECTED_KEY, WSGIContainer
from wsgi_bridge.access_log import ACCESS_FIELDS, access_log_function
from wsgi_bridge.compat import executor_max_workers
from wsgi_bridge.container import DEFAULT_QUEUE_PER_WORKER, default_worker_count
from wsgi_bridge.mount import ROUTE_ENVIRON_KEY
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
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 Request Entity Too Large\r\n")
    assert header_value(head, "Connection") == "close"  # the upload is never read
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
        assert data.startswith(b"HTTP/1.1 413 ")
        assert closed
        assert wait_for(lambda: len(read_error) == 1)
        assert server.request("GET", "/native")[0] == 200


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


# ------------------------------------------------------------------- 7. environ, PEP 3333
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


def test_short_body_closes_connection() -> None:
    with (
        BridgeServer(apps.too_short_body) as server,
        capture_logs("wsgi_bridge"),
        server.raw() as sock,
    ):
        raw_get(sock)
        data, closed = read_until_close(sock, 5)
    assert closed and data.endswith(b"\r\n\r\n123")


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
