"""Small WSGI applications used by the bridge tests (each one does one thing).

The generic workloads (downloads, uploads, slow and sleepy views) live in
:mod:`wsgi_bridge.testing`, shared with ``benchmarks/bridge_measure.py``, and are
re-exported here so tests read them all as ``apps.<name>``.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, redirect, request, stream_with_context, url_for

from wsgi_bridge.testing import (
    counting_upload,
    gated_download,
    generated_download,
    sleepy,
    slow_first_byte,
)

__all__ = [  # the re-exported workloads; the rest are this module's own
    "counting_upload",
    "gated_download",
    "generated_download",
    "sleepy",
    "slow_first_byte",
]

Environ = dict[str, Any]


def hello(environ: Environ, start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


def echo_environ(environ: Environ, start_response: Any) -> list[bytes]:
    """Return repr of the CGI part of environ (str keys/values only)."""
    keys = sorted(k for k, v in environ.items() if isinstance(v, str | tuple | bool))
    body = "\n".join(f"{k}={environ[k]!r}" for k in keys).encode("utf-8")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]


def raise_before_start(environ: Environ, start_response: Any) -> list[bytes]:
    raise RuntimeError("boom before start_response")


def never_start(environ: Environ, start_response: Any) -> list[bytes]:
    return [b"nobody called start_response"]


def raise_after_start(environ: Environ, start_response: Any) -> list[bytes]:
    start_response("200 OK", [])
    raise RuntimeError("boom after start_response")


def yield_then_raise(environ: Environ, start_response: Any) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"first chunk"
    raise RuntimeError("boom mid-body")


def crlf_header(environ: Environ, start_response: Any) -> list[bytes]:
    start_response("200 OK", [("X-Bad", "a\r\nInjected: yes")])
    return [b"x"]


def non_latin1_header(environ: Environ, start_response: Any) -> list[bytes]:
    start_response("200 OK", [("X-Bad", "snowman \u2603")])
    return [b"x"]


def bad_header_name(environ: Environ, start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Bad Name", "x")])
    return [b"x"]


def non_iterable(environ: Environ, start_response: Any) -> Any:
    start_response("200 OK", [])
    return 42


def yields_str(environ: Environ, start_response: Any) -> Iterator[Any]:
    start_response("200 OK", [])
    yield "text, not bytes"


def bad_status(environ: Environ, start_response: Any) -> list[bytes]:
    start_response("OK", [])
    return [b"x"]


def exc_info_replace(environ: Environ, start_response: Any) -> list[bytes]:
    """(g) 200 then 500 with exc_info before any body: the 500 page wins."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise ValueError("late failure")
    except ValueError:
        start_response(
            "500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info()
        )
    return [b"custom error page"]


def exc_info_after_sent(environ: Environ, start_response: Any) -> Iterator[bytes]:
    """exc_info after headers went out: start_response re-raises; connection closed."""
    start_response("200 OK", [])
    yield b"partial"
    try:
        raise ValueError("too late")
    except ValueError:
        start_response("500 Internal Server Error", [], sys.exc_info())
    yield b"never"


def second_start_response(environ: Environ, start_response: Any) -> list[bytes]:
    start_response("200 OK", [])
    start_response("201 Created", [])
    return [b"x"]


def legacy_write(environ: Environ, start_response: Any) -> list[bytes]:
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written ")
    write(b"then ")
    return [b"returned"]


def head_no_length(environ: Environ, start_response: Any) -> list[bytes]:
    """(c) 5-byte body without Content-Length."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"12345"]


def status_204(environ: Environ, start_response: Any) -> list[bytes]:
    start_response("204 No Content", [("Content-Length", "0")])
    return [b""]


def status_304(environ: Environ, start_response: Any) -> Iterator[bytes]:
    start_response("304 Not Modified", [("ETag", '"x"')])
    yield b""


def too_long_body(environ: Environ, start_response: Any) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Length", "5")])
    yield b"123"
    yield b"456789"
    yield b"never reached"


def too_short_body(environ: Environ, start_response: Any) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Length", "10")])
    yield b"123"


def app_chunked(environ: Environ, start_response: Any) -> Iterator[bytes]:
    start_response("200 OK", [("Transfer-Encoding", "chunked")])
    yield b"abc"
    yield b"def"


def hop_by_hop(environ: Environ, start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Keep-Alive", "timeout=5"), ("Upgrade", "h2c"), ("X-Ok", "1")])
    return [b"ok"]


def connection_close(environ: Environ, start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Connection", "close")])
    return [b"bye"]


def generator_stream(environ: Environ, start_response: Any) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    for i in range(3):
        yield b"chunk%d;" % i


def read_body(environ: Environ, start_response: Any) -> list[bytes]:
    """Return the length of the body read with read() and the environ framing keys."""
    data = environ["wsgi.input"].read()
    info = (
        f"{len(data)} cl={environ.get('CONTENT_LENGTH')!r} "
        f"term={environ.get('wsgi.input_terminated')!r}"
    )
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [info.encode(), b"\n", data[:64]]


def read_lines(environ: Environ, start_response: Any) -> list[bytes]:
    stream = environ["wsgi.input"]
    first = stream.readline()
    limited = stream.readline(3)
    rest = stream.readlines()
    after = stream.read()
    start_response("200 OK", [])
    return [repr((first, limited, rest, after)).encode()]


def file_wrapper_app(environ: Environ, start_response: Any) -> Any:
    import io

    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](io.BytesIO(b"x" * 200_000), 65536)


class Tracker:
    """Records what happened to a response iterable, across threads."""

    def __init__(self) -> None:
        self.closed = threading.Event()
        self.close_count = 0
        self.chunks = 0
        self.threads: set[int] = set()
        self.started = threading.Event()
        self.release = threading.Event()

    def slow_stream(self, chunks: int = 50, delay: float = 0.1) -> Any:
        """(e) ``chunks`` chunks ``delay`` seconds apart; records close()."""
        tracker = self

        class Body:
            def __init__(self) -> None:
                tracker.threads.add(threading.get_ident())

            def __iter__(self) -> Iterator[bytes]:
                tracker.started.set()
                for i in range(chunks):
                    tracker.threads.add(threading.get_ident())
                    tracker.chunks += 1
                    yield b"chunk %04d\n" % i
                    time.sleep(delay)

            def close(self) -> None:
                tracker.threads.add(threading.get_ident())
                tracker.close_count += 1
                tracker.closed.set()

        def app(environ: Environ, start_response: Any) -> Any:
            tracker.threads.add(threading.get_ident())
            start_response("200 OK", [("Content-Type", "text/plain")])
            return Body()

        return app

    def endless(self, chunk_size: int = 65536) -> Any:
        """An endless fast stream (for backpressure + disconnect)."""
        tracker = self

        def gen() -> Iterator[bytes]:
            block = b"z" * chunk_size
            try:
                tracker.started.set()
                while True:
                    tracker.chunks += 1
                    yield block
            finally:
                tracker.close_count += 1
                tracker.closed.set()

        def app(environ: Environ, start_response: Any) -> Any:
            start_response("200 OK", [("Content-Type", "application/octet-stream")])
            return gen()

        return app

    def blocking(self) -> Any:
        """Blocks its worker until ``release`` is set (fills the pool)."""
        tracker = self

        def app(environ: Environ, start_response: Any) -> list[bytes]:
            tracker.chunks += 1
            tracker.started.set()
            tracker.release.wait(20)
            start_response("200 OK", [])
            return [environ["PATH_INFO"].encode()]

        return app


def make_flask_app() -> Flask:
    """A Flask app exercising request data, url_for, redirects and stream_with_context."""
    app = Flask(__name__)

    @app.post("/length")
    def length() -> str:
        return str(len(request.get_data()))

    @app.get("/where")
    def where() -> dict[str, str]:
        return {
            "url_for": url_for("where"),
            "external": url_for("where", _external=True),
            "remote_addr": request.remote_addr or "",
            "script_root": request.script_root,
            "path": request.path,
        }

    @app.get("/go")
    def go() -> Response:
        return redirect(url_for("where"))

    @app.get("/stream")
    def stream() -> Response:
        def generate() -> Iterator[str]:
            yield "path="
            yield request.path  # needs the request context inside the generator
            yield ";args=" + request.args.get("q", "")

        return Response(stream_with_context(generate()), mimetype="text/plain")

    @app.get("/fail")
    def fail() -> str:
        raise RuntimeError("flask view failed")

    return app
