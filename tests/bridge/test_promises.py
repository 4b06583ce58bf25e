"""Promises of docs/wsgi-bridge.md, each with a test that fails when it breaks (issue 16).

Every test here was run against a hand-made regression of ``wsgi_bridge/`` and seen
red (the regressions are listed in docs/wsgi-bridge.md, "Promises and the regressions
their tests catch").  ``close()`` is counted on iterable *objects* with an explicit
``close()`` method, never through a generator's ``finally`` (which also runs at
garbage collection, so it cannot tell a skipped ``close()`` from a called one).
"""

from __future__ import annotations

import array
import fcntl
import socket
import termios
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.bridge.kinds import BOTH, MOUNTS
from wsgi_bridge.testing import (
    BridgeServer,
    capture_logs,
    header_value,
    read_response_head,
    read_until_close,
    status_of,
)

Environ = dict[str, Any]

#: Seconds the docs allow between a client's disconnect and ``close()`` ("within about
#: a second", measured 0.001-0.1 s), plus a margin for a loaded two-core machine.
CLOSE_AFTER_DISCONNECT = 1.5


class CountingBody:
    """A response iterable object counting the items pulled and its ``close()`` calls.

    :param items: how many chunks to yield at most.
    :param chunk: the bytes of each chunk.
    :param fail_at: raise ``RuntimeError`` when item number ``fail_at`` (0-based) is
        pulled, or never (None).
    :param gap: an Event waited on for at most ``gap_timeout`` seconds between items
        (None: no wait); it lets a test leave mid-stream at a known point.
    """

    def __init__(
        self,
        items: int,
        chunk: bytes = b"x",
        fail_at: int | None = None,
        gap: threading.Event | None = None,
        gap_timeout: float = 0.1,
    ) -> None:
        self.items = items
        self.chunk = chunk
        self.fail_at = fail_at
        self.gap = gap
        self.gap_timeout = gap_timeout
        self.pulled = 0
        self.bytes_pulled = 0
        self.close_calls = 0
        self.closed = threading.Event()
        self.started = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        """The object itself is the iterator (no generator, no ``finally``)."""
        return self

    def __next__(self) -> bytes:
        """The next chunk; raises ``StopIteration`` after ``items``, or the planned error."""
        self.started.set()
        if self.pulled and self.gap is not None:
            self.gap.wait(self.gap_timeout)
        if self.pulled >= self.items:
            raise StopIteration
        if self.pulled == self.fail_at:
            self.pulled += 1
            raise RuntimeError("the iterator broke")
        self.pulled += 1
        self.bytes_pulled += len(self.chunk)
        return self.chunk

    def close(self) -> None:
        """Count the call (PEP 3333: the server calls it once, whatever happened)."""
        self.close_calls += 1
        self.closed.set()


def serving(body: CountingBody, headers: list[tuple[str, str]] | None = None) -> Any:
    """A WSGI app answering 200 with ``headers`` and ``body`` (one request at a time)."""

    def app(environ: Environ, start_response: Any) -> CountingBody:
        start_response("200 OK", list(headers or []))
        return body

    return app


def raw_request(sock: socket.socket, method: str = "GET", path: str = "/", extra: str = "") -> None:
    """Send a bodyless HTTP/1.1 request on ``sock`` (``extra``: more header lines)."""
    sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n".encode("latin-1"))


# --------------------------------------------------- 1. close() exactly once, row 2
@BOTH
@pytest.mark.parametrize(
    ("case", "body", "headers"),
    [
        pytest.param(case, body, headers, id=case.replace(" ", "-"))
        for case, body, headers in [
            ("iterator raises at once", CountingBody(5, fail_at=0), []),
            ("iterator raises mid-body", CountingBody(5, fail_at=2), []),
            ("stops at Content-Length", CountingBody(100, b"12345"), [("Content-Length", "7")]),
            (
                "stops at exactly Content-Length",
                CountingBody(100, b"12345"),
                [("Content-Length", "10")],
            ),
            ("runs to the end", CountingBody(3), []),
        ]
    ],
)
def test_close_is_called_exactly_once_on_the_iterable_object(
    kind: str, case: str, body: CountingBody, headers: list[tuple[str, str]]
) -> None:
    body = CountingBody(body.items, body.chunk, body.fail_at)  # fresh per kind
    app = serving(body, headers)
    with BridgeServer(app, kind=kind) as server, capture_logs("wsgi_bridge"), server.raw() as sock:
        raw_request(sock, extra="Connection: close\r\n")
        assert read_until_close(sock, 5)[1]
    # The server stopped: drain() saw the worker finish, so the count is final.
    assert body.close_calls == 1, (case, body.close_calls)
    if "Content-Length" in dict(headers):
        assert body.pulled == 2, "iteration stops once Content-Length is reached"


@BOTH
def test_once_write_completed_content_length_the_iterable_is_not_iterated_on(kind: str) -> None:
    """``write()`` already sent the declared ``Content-Length``: the bridge pulls one
    item of the returned iterable (nothing of it fits), stops and calls ``close()``."""
    body = CountingBody(100, b"extra")

    def app(environ: Environ, start_response: Any) -> CountingBody:
        write = start_response("200 OK", [("Content-Length", "5")])
        write(b"12345")
        return body

    with BridgeServer(app, kind=kind) as server, server.raw() as sock:
        raw_request(sock, extra="Connection: close\r\n")
        data, closed = read_until_close(sock, 5)
    assert closed and data.partition(b"\r\n\r\n")[2] == b"12345"
    assert body.pulled == 1, f"pulled {body.pulled} items after Content-Length was reached"
    assert body.close_calls == 1


@BOTH
def test_an_empty_iterable_is_a_content_length_0_response_on_a_kept_connection(kind: str) -> None:
    """An iterable (not a list) that yields nothing gets ``Content-Length: 0``, not
    chunked framing, and the connection serves the next request."""

    def app(environ: Environ, start_response: Any) -> CountingBody:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return CountingBody(0)

    with BridgeServer(app, kind=kind) as server, server.raw() as sock:
        raw_request(sock)
        head, rest = read_response_head(sock, 5)
        assert status_of(head) == 200 and rest == b""
        assert header_value(head, "Content-Length") == "0"
        assert header_value(head, "Transfer-Encoding") is None
        assert header_value(head, "Connection") != "close"
        raw_request(sock, extra="Connection: close\r\n")
        data, closed = read_until_close(sock, 5)
    assert closed and status_of(data) == 200


# ------------------------------------------------ 3. HEAD stops at once, row 8
@BOTH
def test_head_stops_iterating_after_the_first_chunk_and_closes(kind: str) -> None:
    body = CountingBody(1000, b"chunk")
    with BridgeServer(serving(body), kind=kind) as server, server.raw() as sock:
        raw_request(sock, "HEAD")
        head, rest = read_response_head(sock, 5)
        assert status_of(head) == 200 and rest == b""
        assert body.closed.wait(5)
    assert body.pulled == 1, f"HEAD pulled {body.pulled} items, the docs promise 1"
    assert body.close_calls == 1


# ------------------------------------------- 4. a bare CR in a header value, row 1
def bare_cr_header(environ: Environ, start_response: Any) -> list[bytes]:
    """A header value with a bare CR (no LF): a response-splitting attempt."""
    start_response("200 OK", [("X-Bad", "a\rInjected: yes")])
    return [b"x"]


@BOTH
def test_bare_cr_in_a_header_value_is_a_500_not_a_dropped_connection(kind: str) -> None:
    server = BridgeServer(bare_cr_header, kind=kind)
    with server, capture_logs("wsgi_bridge"), server.raw() as sock:
        raw_request(sock)
        head, rest = read_response_head(sock, 5)
        assert status_of(head) == 500
        assert b"Injected" not in head
        length = int(header_value(head, "Content-Length") or "-1")
        while len(rest) < length:
            rest += sock.recv(4096)
        assert rest == b"Internal Server Error\n"


# ------------------------------------------------ 5. backpressure window, row 3
@MOUNTS
def test_output_ahead_of_a_client_that_does_not_read_is_bounded_by_the_window(
    kind: str,
) -> None:
    window = 256 * 1024
    chunk = 16 * 1024
    body = CountingBody(100_000, b"z" * chunk)
    with (
        capture_logs("wsgi_bridge") as logs,
        BridgeServer(serving(body), kind=kind, response_buffer_size=window) as server,
    ):
        with server.raw() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            raw_request(sock)
            assert body.started.wait(5)
            # The client reads nothing.  Production stops once window + socket buffers
            # are full; wait until it has not moved for a generous quiet period.
            last = -1
            deadline = time.monotonic() + 20
            while body.bytes_pulled != last and time.monotonic() < deadline:
                last = body.bytes_pulled
                time.sleep(0.5)
            produced = body.bytes_pulled
            assert produced == last, "production never stopped"
            # What the kernels hold (the server's send queue, the client's receive
            # queue; framing included, so slightly more than body bytes) is not the
            # bridge's: the rest of the output is in the bridge's buffers.
            in_kernels = queued_in_kernels(server, sock)
            ahead = produced - in_kernels
            assert ahead <= 2 * window, (produced, in_kernels, ahead, window)
            assert not body.closed.is_set()
        assert body.closed.wait(CLOSE_AFTER_DISCONNECT * 4)
    assert body.close_calls == 1
    # The worker blocked on the window just stops: nothing failed, nothing to log.
    assert logs.messages() == []


def queued_in_kernels(server: BridgeServer, client: socket.socket) -> int:
    """Bytes in the server socket's send queue plus the client socket's receive queue.

    Linux ``ioctl``s ``TIOCOUTQ`` and ``FIONREAD`` (``SIOCOUTQ``/``SIOCINQ``, tcp(7)).
    The server's socket is the one connection of ``server``'s ``HTTPServer`` (Tornado
    keeps them in ``_connections``).
    """
    streams = server.call(
        lambda: [conn.stream for conn in server.http_server._connections]  # type: ignore[union-attr]
    )
    assert len(streams) == 1, streams
    out_queue = array.array("i", [0])
    fcntl.ioctl(streams[0].socket.fileno(), termios.TIOCOUTQ, out_queue)
    in_queue = array.array("i", [0])
    fcntl.ioctl(client.fileno(), termios.FIONREAD, in_queue)
    return out_queue[0] + in_queue[0]


# -------------------------------------------- close() soon after a disconnect, row 5
@BOTH
def test_close_follows_a_disconnect_within_about_a_second(kind: str) -> None:
    gap = threading.Event()  # never set: each item waits its 0.1 s gap
    body = CountingBody(50, b"chunk\n", gap=gap, gap_timeout=0.1)
    with BridgeServer(serving(body), kind=kind) as server:
        with server.raw() as sock:
            raw_request(sock)
            head, _ = read_response_head(sock, 5)
            assert status_of(head) == 200
        left_at = time.monotonic()
        assert body.closed.wait(CLOSE_AFTER_DISCONNECT), "close() not within about 1 s"
        waited = time.monotonic() - left_at
    assert body.close_calls == 1
    assert body.pulled < 50, waited


# --------------------------------------- 6. drain closes keep-alive connections, row 10
@MOUNTS
def test_drain_closes_a_kept_alive_connection_after_its_current_response(kind: str) -> None:
    release = threading.Event()
    started = threading.Event()

    def app(environ: Environ, start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/held":
            started.set()
            release.wait(20)
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    with BridgeServer(app, kind=kind) as server, server.raw() as sock:
        try:
            raw_request(sock, path="/first")
            head, rest = read_response_head(sock, 5)
            assert status_of(head) == 200 and header_value(head, "Connection") != "close"
            while len(rest) < 2:
                rest += sock.recv(16)
            raw_request(sock, path="/held")  # the same, kept-alive connection
            assert started.wait(5)
            assert server.call(lambda: server.container.drain(0.05)) is False
            release.set()
            data, closed = read_until_close(sock, 5)
        finally:
            release.set()
    head, _, body = data.partition(b"\r\n\r\n")
    assert status_of(head) == 200 and body == b"ok"
    assert header_value(head, "Connection") == "close"
    assert closed, "the server must close the connection after that response"
