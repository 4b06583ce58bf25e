"""The one small Flask app that every benchmarked server serves.

Routes:

* ``GET /hello``: plain text.
* ``GET /json``: a small JSON document.
* ``GET /block?ms=200``: sleeps ``ms`` milliseconds (a blocking call, e.g. a slow query).
* ``GET /stream?mb=512``: a generated body of ``mb`` MiB streamed in 64 KiB chunks,
  without ``Content-Length``.
* ``POST /upload``: reads the request body from ``request.stream`` in 64 KiB pieces and
  returns the byte count as JSON.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from flask import Flask, Response, jsonify, request

CHUNK_SIZE = 64 * 1024
MIB = 1024 * 1024
HELLO_BODY = "Hello, World!"
JSON_PAYLOAD: dict[str, object] = {"message": "Hello, World!", "items": [1, 2, 3], "ok": True}
MAX_BLOCK_MS = 60_000
MAX_STREAM_MB = 4096.0

_CHUNK = b"x" * CHUNK_SIZE


def generate_body(total: int, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Yield ``total`` bytes in pieces of at most ``chunk_size`` bytes."""
    chunk = _CHUNK if chunk_size == CHUNK_SIZE else b"x" * chunk_size
    full, rest = divmod(total, chunk_size)
    for _ in range(full):
        yield chunk
    if rest:
        yield chunk[:rest]


def create_app() -> Flask:
    """Build the benchmark Flask application."""
    app = Flask(__name__)

    @app.get("/hello")
    def hello() -> Response:
        return Response(HELLO_BODY, mimetype="text/plain")

    @app.get("/json")
    def json_route() -> Response:
        return jsonify(JSON_PAYLOAD)

    @app.get("/block")
    def block() -> Response:
        ms = min(max(request.args.get("ms", default=200, type=int) or 0, 0), MAX_BLOCK_MS)
        time.sleep(ms / 1000.0)
        return Response(f"slept {ms} ms", mimetype="text/plain")

    @app.get("/stream")
    def stream() -> Response:
        mb = request.args.get("mb", default=512.0, type=float) or 0.0
        total = int(min(max(mb, 0.0), MAX_STREAM_MB) * MIB)
        return Response(generate_body(total), mimetype="application/octet-stream")

    @app.post("/upload")
    def upload() -> Response:
        stream = request.stream
        total = 0
        while True:
            piece = stream.read(CHUNK_SIZE)
            if not piece:
                break
            total += len(piece)
        return jsonify({"bytes": total})

    return app


app = create_app()
