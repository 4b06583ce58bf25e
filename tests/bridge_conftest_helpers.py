"""Real-socket test harness for the WSGI bridge (imported by tests/test_bridge_*.py).

:class:`BridgeServer` runs a Tornado ``HTTPServer`` on 127.0.0.1 (random port) in a
background thread with its own asyncio loop, so tests talk to it with plain blocking
sockets and ``http.client`` from the test thread.  Everything it opens (sockets,
executor, loop) is closed by :meth:`BridgeServer.stop`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.client
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import tornado.web
import tornado.wsgi
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.netutil import bind_sockets

from wsgi_bridge import WSGIContainer, WSGIFallbackHandler, access_log_function, ensure_request_id

#: Which container a test runs against: ours with our handler, ours under Tornado's
#: plain FallbackHandler (the drop-in promise), ours as the bare ``HTTPServer``
#: callback (no native route), or Tornado 6.6.1's own.
KINDS = ("bridge", "bridge-plain", "bridge-server", "tornado")


class NativeHandler(tornado.web.RequestHandler):
    """A native Tornado route, to prove it keeps answering while the pool is busy."""

    def get(self) -> None:
        ensure_request_id(self.request)
        self.write(b"native")


class BridgeServer:
    """A Tornado server with the native route ``/native`` and a WSGI fallback.

    :param wsgi_app: the WSGI application.
    :param kind: one of :data:`KINDS`.
    :param workers: executor threads.
    :param server_kwargs: extra ``HTTPServer`` arguments (e.g. ``max_body_size``).
    :param options: ``WSGIContainer`` options (ignored for ``kind="tornado"``).
    """

    def __init__(
        self,
        wsgi_app: Callable[..., Any],
        kind: str = "bridge",
        workers: int = 4,
        server_kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        self.wsgi_app = wsgi_app
        self.kind = kind
        self.workers = workers
        self.server_kwargs = server_kwargs or {}
        self.options = options
        self.port = 0
        self.container: Any = None
        self.loop: IOLoop | None = None
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"bridge-server-{kind}")

    def start(self) -> BridgeServer:
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("server did not start")
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced by start()/stop()
            self._error = exc
            self._started.set()

    async def _main(self) -> None:
        self.loop = IOLoop.current()
        executor = concurrent.futures.ThreadPoolExecutor(self.workers, "bridge-test")
        self.executor = executor
        if self.kind == "tornado":
            self.container = tornado.wsgi.WSGIContainer(self.wsgi_app, executor)
            fallback: Any = (r".*", tornado.web.FallbackHandler, {"fallback": self.container})
        else:
            self.container = WSGIContainer(self.wsgi_app, executor, **self.options)
            handler = WSGIFallbackHandler if self.kind == "bridge" else tornado.web.FallbackHandler
            fallback = (r".*", handler, {"fallback": self.container})
        app: Any = tornado.web.Application(
            [(r"/native", NativeHandler), fallback], log_function=access_log_function
        )
        if self.kind == "bridge-server":
            app = self.container  # HTTPServer(container): the bare request callback

        sockets = bind_sockets(0, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        server = HTTPServer(app, **self.server_kwargs)
        server.add_sockets(sockets)
        self._stop = asyncio.Event()
        self._started.set()
        await self._stop.wait()
        server.stop()
        await server.close_all_connections()
        if isinstance(self.container, WSGIContainer):
            await self.container.drain(10)
        await asyncio.get_running_loop().run_in_executor(None, executor.shutdown)

    def call(self, fn: Callable[[], Any], timeout: float = 10) -> Any:
        """Run ``fn`` on the server's IOLoop and return its result (awaits coroutines)."""
        assert self.loop is not None
        result: concurrent.futures.Future[Any] = concurrent.futures.Future()

        async def runner() -> None:
            try:
                value = fn()
                if asyncio.iscoroutine(value):
                    value = await value
                result.set_result(value)
            except BaseException as exc:
                result.set_exception(exc)

        self.loop.add_callback(runner)
        return result.result(timeout)

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None:
            self.loop.add_callback(self._stop.set)
        self._thread.join(30)
        if self._thread.is_alive():
            raise RuntimeError("server thread did not stop")

    def __enter__(self) -> BridgeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --------------------------------------------------------------- clients
    def http(self, timeout: float = 10) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 10,
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        """One request on a new connection; returns ``(status, headers, body)``."""
        conn = self.http(timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.headers, resp.read()
        finally:
            conn.close()

    @contextmanager
    def raw(self, timeout: float = 10) -> Iterator[socket.socket]:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        try:
            yield sock
        finally:
            sock.close()


def read_until_close(sock: socket.socket, limit: float = 10) -> tuple[bytes, bool]:
    """Read until EOF; returns ``(data, closed)``; ``closed`` False on timeout."""
    sock.settimeout(0.2)
    data = bytearray()
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return bytes(data), True
        if not chunk:
            return bytes(data), True
        data += chunk
    return bytes(data), False


def read_response_head(sock: socket.socket, limit: float = 10) -> tuple[bytes, bytes]:
    """Read a status line + headers; returns ``(head, extra_bytes_after_head)``."""
    sock.settimeout(limit)
    data = bytearray()
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = bytes(data).partition(b"\r\n\r\n")
    return head, rest


def header_value(head: bytes, name: str) -> str | None:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.decode("latin-1").partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


def status_of(head: bytes) -> int:
    return int(head.split(b" ", 2)[1])


class LogCapture(logging.Handler):
    """Collect records of a logger (thread-safe enough for tests)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self, level: int = logging.DEBUG) -> list[str]:
        return [r.getMessage() for r in list(self.records) if r.levelno >= level]


@contextmanager
def capture_logs(name: str) -> Iterator[LogCapture]:
    logger = logging.getLogger(name)
    handler = LogCapture()
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def wait_for(predicate: Callable[[], bool], timeout: float = 5, step: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


# ------------------------------------------------------------------ subprocess server
def _subprocess_app(spec: str) -> Callable[..., Any]:
    import bridge_apps

    name, _, arg = spec.partition(":")
    if name == "download":
        return bridge_apps.generated_download(int(arg))
    if name == "gated-download":
        return bridge_apps.gated_download(int(arg))
    if name == "upload":
        return bridge_apps.counting_upload
    if name == "slow":
        return bridge_apps.slow_first_byte(float(arg))
    raise ValueError(spec)


def serve_forever_from_argv(argv: list[str]) -> None:
    """``python bridge_conftest_helpers.py KIND APP`` prints the port, serves until stdin EOF.

    Used by the RSS tests and ``benchmarks/bridge_measure.py`` so the measured process
    is only the server.
    """
    import sys

    kind, spec = argv[0], argv[1]
    server = BridgeServer(
        _subprocess_app(spec),
        kind=kind,
        workers=4,
        server_kwargs={"max_body_size": 2 * 1024**3},
        max_body_size=2 * 1024**3,
    ).start()
    print(server.port, flush=True)
    try:
        sys.stdin.read()
    finally:
        server.stop()


class SubprocessServer:
    """A :class:`BridgeServer` in a child process; ``rss()`` reads its resident memory."""

    def __init__(self, kind: str, spec: str) -> None:
        self.kind = kind
        self.spec = spec

    def __enter__(self) -> SubprocessServer:
        import os
        import subprocess
        import sys

        import psutil

        here = os.path.dirname(os.path.abspath(__file__))
        root = os.path.dirname(here)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([root, here, env.get("PYTHONPATH", "")])
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), self.kind, self.spec],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())
        self.ps = psutil.Process(self.proc.pid)
        return self

    def rss(self) -> int:
        return int(self.ps.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        import subprocess

        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.proc.stdout.close()


class PeakSampler:
    """Sample a callable returning bytes (e.g. RSS) every ``interval`` s; keeps the max."""

    def __init__(self, sample: Callable[[], int], interval: float = 0.01) -> None:
        self.sample = sample
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.sample())
            except Exception:
                return
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakSampler:
        self.peak = self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        with suppress(Exception):
            self.peak = max(self.peak, self.sample())


def stream_download(port: int, path: str = "/", block: int = 65536) -> tuple[int, float]:
    """GET ``path`` and discard the body; returns ``(body_bytes, seconds_to_first_byte)``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        start = time.monotonic()
        conn.request("GET", path)
        resp = conn.getresponse()
        first = resp.read1(block) if hasattr(resp, "read1") else resp.read(1)
        ttfb = time.monotonic() - start
        total = len(first)
        while True:
            piece = resp.read1(block)
            if not piece:
                break
            total += len(piece)
        return total, ttfb
    finally:
        conn.close()


def stream_upload(port: int, size: int, block: int = 65536) -> bytes:
    """POST ``size`` zero bytes in ``block`` pieces with Content-Length; returns the body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.putrequest("POST", "/")
        conn.putheader("Content-Length", str(size))
        conn.endheaders()
        piece = b"\0" * block
        sent = 0
        while sent < size:
            n = min(block, size - sent)
            conn.send(piece[:n])
            sent += n
        return conn.getresponse().read()
    finally:
        conn.close()


if __name__ == "__main__":
    import sys

    serve_forever_from_argv(sys.argv[1:])
