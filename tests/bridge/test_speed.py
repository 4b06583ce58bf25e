"""The hot-path mechanisms of the response side (docs/wsgi-bridge.md, "Output").

Over real sockets: the one-wake-up-per-batch ``LoopPoster`` and the chunk writes of
``ResponsePump``; as units: :func:`wsgi_bridge.pump.group_writes`.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from typing import Any

from tornado.ioloop import IOLoop

from wsgi_bridge.container import DEFAULT_RESPONSE_BUFFER_SIZE
from wsgi_bridge.pump import WRITE_WINDOW, LoopPoster, group_writes, poster_for
from wsgi_bridge.testing import (
    BridgeServer,
    capture_logs,
    generated_download,
    read_response_head,
    wait_for,
)
from wsgi_bridge.types import Environ

# ---------------------------------------------------------------- group_writes (units)


def test_group_writes_gives_large_chunks_a_write_of_their_own() -> None:
    big = b"a" * WRITE_WINDOW
    bigger = b"b" * (3 * WRITE_WINDOW)
    groups = group_writes([b"x", big, bigger, b"y"], WRITE_WINDOW)
    assert groups == [[b"x"], [big], [bigger], [b"y"]]
    assert groups[1][0] is big and groups[2][0] is bigger  # never copied


def test_group_writes_groups_small_neighbours_up_to_the_window() -> None:
    small = [bytes([65 + i]) * 1000 for i in range(10)]
    big = b"z" * 5000
    chunks = [*small, big, *small]
    groups = group_writes(chunks, 4000)
    assert [c for g in groups for c in g] == chunks
    assert [sum(map(len, g)) for g in groups] == [4000, 4000, 2000, 5000, 4000, 4000, 2000]
    assert group_writes([], 4000) == []
    assert group_writes([b"x"], 4000) == [[b"x"]]


def test_default_buffer_lets_a_streaming_worker_queue_16_chunks_sent_in_one_write() -> None:
    """S5: a worker streaming 64 KiB chunks blocks only after 1 MiB is unflushed (it
    blocked every 4 chunks at 256 KiB: ~0.7x gunicorn's rate), and all it queued
    then goes out in one write."""
    with BridgeServer(generated_download(1024)) as server:
        assert server.container.response_buffer_size == DEFAULT_RESPONSE_BUFFER_SIZE
    assert DEFAULT_RESPONSE_BUFFER_SIZE == 1024 * 1024
    queued = [b"c" * 65536] * (DEFAULT_RESPONSE_BUFFER_SIZE // 65536 + 1)
    assert len(group_writes(queued, WRITE_WINDOW)) == 1


# ------------------------------------------------- chunk writes (real sockets)


def mixed_chunks() -> list[bytes]:
    """Small and large chunks interleaved, each recognisable."""
    out: list[bytes] = []
    for i in range(40):
        out.append(b"%03d;" % i)
        if i % 7 == 0:
            out.append(bytes([97 + i % 26]) * (WRITE_WINDOW + 17 * i))
    return out


def mixed_stream(environ: Environ, start_response: Any) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return iter(mixed_chunks())


def decode_chunked(sock: socket.socket, rest: bytes) -> bytes:
    """Read one chunked body from ``sock`` (``rest``: bytes already read after the head),
    checking every chunk's framing; returns the body."""
    buf = bytearray(rest)
    body = bytearray()

    def need(n: int) -> None:
        while len(buf) < n:
            data = sock.recv(1 << 20)
            assert data, "connection closed inside the chunked body"
            buf.extend(data)

    while True:
        while b"\r\n" not in buf:
            need(len(buf) + 1)
        line = bytes(buf).partition(b"\r\n")[0]
        size = int(line, 16)
        del buf[: len(line) + 2]
        need(size + 2)
        assert bytes(buf[size : size + 2]) == b"\r\n", "chunk not followed by CRLF"
        body += buf[:size]
        del buf[: size + 2]
        if size == 0:
            assert not buf, "bytes after the last chunk"
            return bytes(body)


def test_mixed_chunks_arrive_exact_and_keep_alive_holds() -> None:
    expected = b"".join(mixed_chunks())
    server = BridgeServer(mixed_stream, response_buffer_size=64 * 1024)
    with server, server.raw() as sock:
        for _ in range(2):  # the same connection twice: the framing ended exactly
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            head, rest = read_response_head(sock)
            assert head.startswith(b"HTTP/1.1 200")
            assert b"Transfer-Encoding: chunked" in head
            assert decode_chunked(sock, rest) == expected


# ---------------------------------------------- LoopPoster: one wake-up per batch


def test_error_after_a_written_chunk_posts_one_pump_for_the_abort() -> None:
    """The app raises after its chunk was written: the abort is ONE pump posted, the
    job's end ("worker finished") finds it scheduled and posts nothing more."""
    written = threading.Event()
    loop_blocked = threading.Event()
    pending: list[int] = []
    server: BridgeServer

    def block_loop() -> None:
        loop_blocked.set()
        # The IOLoop waits here until the worker job returned, so what it posted waits too.
        assert wait_for(lambda: server.container.lane.active == 0)
        assert server.loop is not None
        pending.append(poster_for(server.loop).pending)

    def app(environ: Environ, start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"first chunk"
        assert written.wait(10)  # the pump ran: nothing is scheduled
        assert server.loop is not None
        server.loop.add_callback(block_loop)
        assert loop_blocked.wait(10)
        raise RuntimeError("boom after the flush")

    with (
        capture_logs("wsgi_bridge"),
        BridgeServer(app) as server,
        server.raw() as sock,
    ):
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        _head, data = read_response_head(sock)
        while b"first chunk" not in data:
            more = sock.recv(65536)
            assert more, "closed before the first chunk"
            data += more
        written.set()
        sock.settimeout(10)
        while sock.recv(65536):
            pass  # closed after the abort
    assert pending == [1]


def test_exactly_the_window_queued_while_the_loop_is_busy_does_not_block() -> None:
    """Backpressure starts at MORE than ``response_buffer_size`` unflushed bytes: after
    a chunk that was flushed at once, a worker queues exactly the window while the
    IOLoop is busy and goes on without waiting for it."""
    window = 64 * 1024
    written = threading.Event()
    loop_blocked = threading.Event()
    queued = threading.Event()
    went_on: list[bool] = []
    server: BridgeServer

    def block_loop() -> None:
        loop_blocked.set()
        went_on.append(queued.wait(5))  # a blocked worker would wait for this loop

    def app(environ: Environ, start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        yield b"a"
        assert written.wait(10)  # flushed at once: nothing unflushed any more
        assert server.loop is not None
        server.loop.add_callback(block_loop)
        assert loop_blocked.wait(10)
        yield b"w" * window
        queued.set()

    with BridgeServer(app, response_buffer_size=window) as server, server.raw() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        _head, data = read_response_head(sock)
        while b"a" not in data:
            more = sock.recv(65536)
            assert more, "closed before the first chunk"
            data += more
        written.set()
        assert decode_chunked(sock, data) == b"a" + b"w" * window
    assert went_on == [True]


def test_loop_poster_wakes_once_per_batch_and_counts_every_wakeup() -> None:
    """``LoopPoster``: posts made before the loop drains share one wake-up, run in
    posting order; a post after the drain is a new wake-up, and ``wakeups`` counts
    them all."""
    seen: list[int] = []

    async def main() -> None:
        poster = LoopPoster(IOLoop.current())
        drained = asyncio.Event()
        poster.post(seen.append, 1)
        poster.post(seen.append, 2)
        poster.post(drained.set)
        assert (poster.pending, poster.wakeups) == (3, 1)
        await drained.wait()
        drained.clear()
        poster.post(seen.append, 3)
        poster.post(drained.set)
        assert (poster.pending, poster.wakeups) == (2, 2)
        await drained.wait()
        assert poster.pending == 0

    asyncio.run(main())
    assert seen == [1, 2, 3]


def test_responses_finished_while_the_loop_is_busy_cost_one_wakeup() -> None:
    workers = 4
    apps_running = threading.Barrier(workers + 1)
    go = threading.Event()

    def app(environ: Environ, start_response: Any) -> list[bytes]:
        apps_running.wait(10)
        assert go.wait(10)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"done"]

    loop_blocked = threading.Event()
    unblock_loop = threading.Event()

    def block_loop() -> None:
        loop_blocked.set()
        assert unblock_loop.wait(10)

    with BridgeServer(app, workers=workers) as server:
        socks = [
            socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(workers)
        ]
        try:
            for sock in socks:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            apps_running.wait(10)  # every request is inside the app, on its own thread
            assert server.loop is not None
            poster = server.call(lambda: poster_for(server.loop))
            server.loop.add_callback(block_loop)
            assert loop_blocked.wait(10)
            before = poster.wakeups
            go.set()
            # All four responses are posted while the IOLoop cannot run anything.
            assert wait_for(lambda: poster.pending == workers, timeout=10)
            assert poster.wakeups == before + 1
            unblock_loop.set()
            for sock in socks:
                head = read_response_head(sock)[0]
                assert head.startswith(b"HTTP/1.1 200")
        finally:
            unblock_loop.set()
            go.set()
            for sock in socks:
                sock.close()


def test_sends_while_the_loop_is_busy_post_one_pump_that_counts_every_byte() -> None:
    """A worker's sends while the IOLoop is busy post ONE pump ("unless a pump is
    already scheduled"); that pump writes the head with the first chunk, then the
    rest, every chunk framed with its own size line, and the access line counts
    every body byte."""
    loop_blocked = threading.Event()
    unblock_loop = threading.Event()
    pending: list[int] = []
    chunks = [b"small", b"x" * WRITE_WINDOW, b"tail", b"end"]
    server: BridgeServer

    def block_loop() -> None:
        loop_blocked.set()
        assert unblock_loop.wait(10)

    def app(environ: Environ, start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        assert server.loop is not None
        server.loop.add_callback(block_loop)
        assert loop_blocked.wait(10)
        yield from chunks  # queued while the IOLoop cannot run anything
        pending.append(poster_for(server.loop).pending)
        unblock_loop.set()

    with (
        capture_logs("tornado.access") as access,
        BridgeServer(app, response_buffer_size=4 * WRITE_WINDOW) as server,
        server.raw() as sock,
    ):
        try:
            sock.sendall(b"GET /batch HTTP/1.1\r\nHost: t\r\n\r\n")
            _head, raw = read_response_head(sock)
            while not raw.endswith(b"\r\n0\r\n\r\n"):
                more = sock.recv(1 << 20)
                assert more, "closed inside the chunked body"
                raw += more
        finally:
            unblock_loop.set()
        assert wait_for(lambda: len(access.messages()) == 1)
    assert pending == [1]
    # Every chunk with its own size line, also the two small ones written together.
    tail = b"\r\n4\r\ntail\r\n3\r\nend\r\n0\r\n\r\n"
    assert raw == b"5\r\nsmall\r\n200000\r\n" + chunks[1] + tail
    size = sum(map(len, chunks))
    assert f" 200 {size}B " in access.messages()[0]


# ------------------------------------- a reader slower than the writer (full socket)

BIG = 16 * 1024 * 1024


def declared_length_stream(environ: Environ, start_response: Any) -> Iterator[bytes]:
    """``BIG`` bytes with ``Content-Length``, in 64 KiB chunks (not chunked framing)."""
    start_response(
        "200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(BIG))]
    )
    block = b"q" * 65536
    return iter([block] * (BIG // 65536))


def small_window_client(port: int) -> socket.socket:
    """A connection whose receive buffer is small, so the server's socket fills up and
    the pump has to wait for the stream to drain between writes."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", port))
    return sock


def test_chunked_body_through_a_full_socket_is_exact() -> None:
    app = generated_download(BIG)
    with BridgeServer(app, response_buffer_size=64 * 1024) as server:
        sock = small_window_client(server.port)
        try:
            for _ in range(2):
                sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                head, rest = read_response_head(sock, 30)
                assert b"Transfer-Encoding: chunked" in head
                body = decode_chunked(sock, rest)
                assert len(body) == BIG and body.count(0) == BIG
        finally:
            sock.close()


def test_declared_length_body_through_a_full_socket_is_exact() -> None:
    with BridgeServer(declared_length_stream, response_buffer_size=64 * 1024) as server:
        sock = small_window_client(server.port)
        try:
            for _ in range(2):
                sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                head, rest = read_response_head(sock, 30)
                assert f"Content-Length: {BIG}".encode() in head
                body = bytearray(rest)
                while len(body) < BIG:
                    data = sock.recv(4096)
                    assert data, "connection closed inside the body"
                    body += data
                assert len(body) == BIG and body.count(b"q") == BIG
        finally:
            sock.close()


def test_response_is_complete_only_once_its_bytes_left_the_stream() -> None:
    """The worker queued a body larger than the kernels' buffers and returned while the
    client reads nothing: the exchange stays in flight (no access line, slot held)
    until the stream drained, then completes."""
    finished = threading.Event()

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            block = b"q" * 65536
            return iter([block] * (BIG // 65536))

        def close(self) -> None:
            finished.set()

    def app(environ: Environ, start_response: Any) -> Body:
        start_response("200 OK", [("Content-Length", str(BIG))])
        return Body()

    with (
        capture_logs("tornado.access") as access,
        BridgeServer(app, response_buffer_size=2 * BIG) as server,
    ):
        sock = small_window_client(server.port)
        try:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            assert finished.wait(10)  # everything queued: the worker never blocked
            assert wait_for(lambda: server.call(lambda: server.container.lane.active) == 0)
            server.call(lambda: None)  # the IOLoop ran what the worker posted on its way out
            assert server.call(lambda: server.container.in_flight) == 1
            assert access.messages() == []
            _head, rest = read_response_head(sock, 30)
            body = bytearray(rest)
            while len(body) < BIG:
                data = sock.recv(1 << 20)
                assert data, "connection closed inside the body"
                body += data
            assert len(body) == BIG
            assert wait_for(lambda: server.call(lambda: server.container.in_flight) == 0)
            assert wait_for(lambda: len(access.messages()) == 1)
        finally:
            sock.close()
