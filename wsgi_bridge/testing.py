"""Test helpers for the bridge over real sockets, as ``flask.testing`` is for Flask.

:class:`BridgeServer` runs a Tornado ``HTTPServer`` on 127.0.0.1 (random port) in a
background thread with its own asyncio loop, so a test talks to it with plain blocking
sockets and ``http.client`` from its own thread::

    from wsgi_bridge.testing import BridgeServer

    with BridgeServer(my_wsgi_app, workers=2, max_queue=1) as server:
        status, headers, body = server.request("GET", "/")

On exit the server is stopped and checked: the test fails (``AssertionError``) when an
admission slot leaked, when ``drain()`` timed out, or when anything raised on the
server thread.  :class:`SubprocessServer` runs one of :data:`WORKLOADS` in a child
process so its memory can be measured (``python -m wsgi_bridge.testing KIND SPEC``).
The rest are small client-side helpers: raw-socket reads, log capture, polling,
peak sampling, streamed downloads and uploads.  Used by ``tests/bridge/`` and
``benchmarks/bridge_measure.py``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from http.client import HTTPConnection, HTTPMessage
from types import TracebackType
from typing import Any

import tornado.web
import tornado.wsgi
from tornado.ioloop import IOLoop
from tornado.netutil import bind_sockets

from .access_log import access_log_function
from .container import WSGIContainer
from .handler import WSGIFallbackHandler
from .http1 import HTTPServer
from .mount import WSGIFallback
from .request_id import ensure_request_id
from .types import Environ, StartResponse, WSGIApp

__all__ = [
    "KINDS",
    "UNREACHED_QUEUE_TARGET",
    "WORKLOADS",
    "BridgeServer",
    "LogCapture",
    "PeakSampler",
    "SubprocessServer",
    "capture_logs",
    "counting_upload",
    "gated_download",
    "generated_download",
    "header_value",
    "read_response_head",
    "read_until_close",
    "sleepy",
    "slow_first_byte",
    "status_of",
    "stream_download",
    "stream_upload",
    "wait_for",
]

#: Which container a :class:`BridgeServer` runs: ours with our handler (``bridge``),
#: ours behind the fast mount :class:`~wsgi_bridge.mount.WSGIFallback`
#: (``bridge-fast``), ours under Tornado's plain ``FallbackHandler`` (``bridge-plain``,
#: the drop-in promise), ours as the bare ``HTTPServer`` callback (``bridge-server``,
#: no native route), or Tornado's own ``tornado.wsgi.WSGIContainer`` (``tornado``).
KINDS = ("bridge", "bridge-fast", "bridge-plain", "bridge-server", "tornado")

#: Loggers whose records with a traceback, emitted on the server thread, fail the test.
_SERVER_ERROR_LOGGERS = ("tornado.application", "tornado.general", "asyncio")


class NativeHandler(tornado.web.RequestHandler):
    """The native route ``/native``: proves Tornado keeps answering while the pool is busy."""

    def get(self) -> None:
        """Answer ``b"native"``."""
        ensure_request_id(self.request)
        self.write(b"native")


class _ServerThreadErrors(logging.Handler):
    """Collect records with a traceback logged on one thread (the server's)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.thread_id: int | None = None
        self.problems: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread_id and record.exc_info:
            self.problems.append(f"{record.name}: {self.format(record)}")


#: ``queue_target`` of :class:`BridgeServer` containers unless a test passes one
#: (seconds): no test's queue waits that long, so CoDel never sheds by delay there.
UNREACHED_QUEUE_TARGET = 60.0


class BridgeServer:
    """A Tornado server on 127.0.0.1 with the native route ``/native`` and a WSGI fallback.

    :param wsgi_app: the WSGI application.
    :param kind: one of :data:`KINDS`.
    :param workers: executor threads (also passed as ``max_workers``).
    :param server_kwargs: extra ``HTTPServer`` arguments (e.g. ``max_body_size``).
    :param handler: the fallback handler class for ``kind="bridge"`` (a
        :class:`~wsgi_bridge.WSGIFallbackHandler` subclass, e.g. one with
        ``set_default_headers``).
    :param mount_options: keyword arguments of :class:`~wsgi_bridge.mount.WSGIFallback`
        for ``kind="bridge-fast"`` (e.g. ``default_headers``).

    The server is :class:`wsgi_bridge.HTTPServer` (the HTTP/1.1 edges of
    :mod:`wsgi_bridge.http1`) for every kind, Tornado's container included, so a
    comparison shows the containers, not the servers.
    :param drain_timeout: seconds :meth:`stop` lets ``container.drain()`` wait for the
        requests still in flight before it calls the slot leaked.
    :param options: :class:`~wsgi_bridge.WSGIContainer` keyword options (ignored for
        ``kind="tornado"``).  ``queue_target`` defaults to
        :data:`UNREACHED_QUEUE_TARGET` here: a test that queues requests behind a gate
        is about order or waves, not admission, and on a loaded machine its queue
        could outlast the real target and get 503s.  Tests of admission by queueing
        delay pass ``queue_target`` (and ``queue_interval``) themselves; the hard cap
        ``max_queue`` applies as usual.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.  The attributes
    ``port``, ``container``, ``executor``, ``loop`` and ``http_server`` (the
    :class:`~wsgi_bridge.HTTPServer`) are set once started.  Only :meth:`call` may touch
    ``container`` or ``http_server`` from the test thread (it runs on the IOLoop).
    """

    def __init__(
        self,
        wsgi_app: WSGIApp,
        kind: str = "bridge",
        workers: int = 4,
        server_kwargs: dict[str, Any] | None = None,
        drain_timeout: float = 10,
        handler: type[WSGIFallbackHandler] = WSGIFallbackHandler,
        mount_options: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.wsgi_app = wsgi_app
        self.kind = kind
        self.workers = workers
        self.server_kwargs = server_kwargs or {}
        self.options = options
        self.drain_timeout = drain_timeout
        self.handler = handler
        self.mount_options = mount_options or {}
        self.port = 0
        self.container: Any = None
        self.executor: concurrent.futures.ThreadPoolExecutor | None = None
        self.loop: IOLoop | None = None
        self.http_server: HTTPServer | None = None
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._problems: list[str] = []
        self._errors = _ServerThreadErrors()
        # A daemon, so a test that fails before stop() cannot hang the interpreter's exit.
        self._thread = threading.Thread(target=self._run, name=f"bridge-server-{kind}", daemon=True)

    def start(self) -> BridgeServer:
        """Start serving; returns ``self`` once the port is bound.

        :raises RuntimeError: the server did not start within 10 s.
        :raises BaseException: whatever the server thread raised while starting.
        """
        for name in _SERVER_ERROR_LOGGERS:
            logging.getLogger(name).addHandler(self._errors)
        self._thread.start()
        self._errors.thread_id = self._thread.ident
        if not self._started.wait(10):
            raise RuntimeError("server did not start")
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced by start() and stop()
            self._error = exc
            self._started.set()

    async def _main(self) -> None:
        self.loop = IOLoop.current()
        executor = concurrent.futures.ThreadPoolExecutor(self.workers, "bridge-test")
        self.executor = executor
        fallback: tuple[Any, ...]
        if self.kind == "tornado":
            # Tornado types start_response as its own Protocol; the app is the same callable.
            tornado_app: Any = self.wsgi_app
            self.container = tornado.wsgi.WSGIContainer(tornado_app, executor)
            fallback = (r".*", tornado.web.FallbackHandler, {"fallback": self.container})
        else:
            self.options.setdefault("max_workers", self.workers)
            self.options.setdefault("queue_target", UNREACHED_QUEUE_TARGET)
            self.container = WSGIContainer(self.wsgi_app, executor, **self.options)
            if self.kind == "bridge-fast":
                fallback = (r".*", WSGIFallback(self.container, **self.mount_options))
            else:
                handler = self.handler if self.kind == "bridge" else tornado.web.FallbackHandler
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
        self.http_server = server
        self._stop = asyncio.Event()
        self._started.set()
        await self._stop.wait()
        server.stop()
        await server.close_all_connections()
        ours = isinstance(self.container, WSGIContainer)
        if ours and not await self.container.drain(self.drain_timeout):
            self._problems.append(
                f"drain() timed out after {self.drain_timeout} s with "
                f"in_flight={self.container.in_flight}: "
                "a request never finished or an admission slot leaked"
            )
        await asyncio.get_running_loop().run_in_executor(None, executor.shutdown)
        if ours and self.container.in_flight != 0:
            self._problems.append(
                f"admission slot leaked: in_flight={self.container.in_flight} after shutdown"
            )

    def call(self, fn: Callable[[], Any], timeout: float = 10) -> Any:
        """Run ``fn`` on the server's IOLoop and return its result (awaits coroutines).

        :param timeout: seconds to wait for the result.
        :raises TimeoutError: no result in time.
        :raises BaseException: what ``fn`` raised.
        """
        assert self.loop is not None, "server not started"
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
        """Stop the server, drain the container and shut its executor down, then check.

        :raises AssertionError: an admission slot leaked (``in_flight != 0``),
            ``drain()`` returned False, or something raised or logged a traceback on
            the server thread (the original exception is chained).
        :raises RuntimeError: the server thread did not stop within 30 s.
        """
        problems, error = self._shut_down()
        if problems:
            raise AssertionError("BridgeServer: " + "\n".join(problems)) from error

    def _shut_down(self) -> tuple[list[str], BaseException | None]:
        if self.loop is not None and self._stop is not None:
            self.loop.add_callback(self._stop.set)
        self._thread.join(30)
        for name in _SERVER_ERROR_LOGGERS:
            logging.getLogger(name).removeHandler(self._errors)
        if self._thread.is_alive():
            raise RuntimeError("server thread did not stop within 30 s")
        problems = self._problems + self._errors.problems
        if self._error is not None:
            problems.append(f"the server thread raised {self._error!r}")
        return problems, self._error

    def __enter__(self) -> BridgeServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.stop()
            return
        # The test already fails: keep its exception, add what the server saw.
        problems, _ = self._shut_down()
        for problem in problems:
            exc.add_note(f"BridgeServer: {problem}")

    # --------------------------------------------------------------- clients
    def http(self, timeout: float = 10) -> HTTPConnection:
        """A new ``http.client`` connection to the server (``timeout`` in seconds)."""
        return HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 10,
    ) -> tuple[int, HTTPMessage, bytes]:
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
        """A connected TCP socket to the server, closed on exit (``timeout`` seconds)."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        try:
            yield sock
        finally:
            sock.close()


# ----------------------------------------------------------------- raw-socket reading
def read_until_close(sock: socket.socket, limit: float = 10) -> tuple[bytes, bool]:
    """Read until EOF or reset; returns ``(data, closed)``, ``closed`` False on timeout.

    :param limit: seconds to wait for the peer to close.
    """
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
    """Read a status line and headers; returns ``(head, bytes_read_after_the_head)``.

    ``head`` has no final blank line.  :param limit: socket timeout in seconds.
    """
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
    """The value of header ``name`` (case-insensitive) in a raw ``head``, or None."""
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.decode("latin-1").partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


def status_of(head: bytes) -> int:
    """The status code of a raw response ``head`` (``b"HTTP/1.1 200 OK..."`` -> 200)."""
    return int(head.split(b" ", 2)[1])


# ----------------------------------------------------------------- logs and polling
class LogCapture(logging.Handler):
    """Collects the records of a logger (see :func:`capture_logs`); ``records`` is a list."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep ``record`` (list.append is atomic, so any thread may log)."""
        self.records.append(record)

    def messages(self, level: int = logging.DEBUG) -> list[str]:
        """Formatted messages of the records at ``level`` or above."""
        return [r.getMessage() for r in list(self.records) if r.levelno >= level]


@contextmanager
def capture_logs(name: str) -> Iterator[LogCapture]:
    """Capture every record of logger ``name`` (level DEBUG) inside the ``with`` block."""
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
    """Poll ``predicate`` every ``step`` seconds for up to ``timeout`` seconds.

    :returns: True as soon as it holds, else its value at the deadline.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


class PeakSampler:
    """Sample ``sample()`` (e.g. RSS in bytes) every ``interval`` seconds; keep the max.

    A context manager: sampling runs in a thread between ``__enter__`` and
    ``__exit__``; ``peak`` holds the largest value seen (including one sample at
    each end).
    """

    def __init__(self, sample: Callable[[], int], interval: float = 0.01) -> None:
        self.sample = sample
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-sampler")

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


# ------------------------------------------------------------------------ workloads
def generated_download(total: int, block: int = 65536) -> WSGIApp:
    """A WSGI app answering ``total`` zero bytes, generated ``block`` bytes at a time.

    No ``Content-Length``: the bridge streams it chunked.
    """

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        chunk = b"\0" * block
        sent = 0
        while sent < total:
            piece = chunk if total - sent >= block else chunk[: total - sent]
            sent += len(piece)
            yield piece

    return app


def gated_download(total: int, block: int = 65536) -> WSGIApp:
    """Like :func:`generated_download`, but after the first block it waits (3 s at most)
    until ``/release`` is requested.

    Proves the first byte leaves before the generator is exhausted: the client asks
    for ``/release`` only after it received the first byte.
    """
    gate = threading.Event()

    def gated(start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        chunk = b"\0" * block
        yield chunk
        gate.wait(3)
        sent = block
        while sent < total:
            piece = chunk if total - sent >= block else chunk[: total - sent]
            sent += len(piece)
            yield piece

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        if environ["PATH_INFO"] == "/release":
            gate.set()
            start_response("200 OK", [])
            return iter([b"released"])
        gate.clear()
        return gated(start_response)

    return app


def counting_upload(environ: Environ, start_response: StartResponse) -> list[bytes]:
    """A WSGI app reading the body in 64 KiB pieces; answers the byte count (ASCII)."""
    stream = environ["wsgi.input"]
    total = 0
    while piece := stream.read(65536):
        total += len(piece)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(total).encode()]


def slow_first_byte(delay: float) -> WSGIApp:
    """A WSGI app yielding ``b"first"`` at once, then 5 more chunks ``delay`` s apart."""

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"first"
        for _ in range(5):
            time.sleep(delay)
            yield b"more"

    return app


def sleepy(seconds: float) -> WSGIApp:
    """A WSGI app that sleeps ``seconds`` then answers a one-element list (a busy view)."""

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        time.sleep(seconds)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"%.6f" % time.monotonic()]

    return app


#: Workloads a :class:`SubprocessServer` can serve, by name; the spec is
#: ``NAME`` or ``NAME:ARG`` (``download:67108864``, ``slow:0.5``, ``upload``).
WORKLOADS: dict[str, Callable[[str], WSGIApp]] = {
    "download": lambda arg: generated_download(int(arg)),
    "gated-download": lambda arg: gated_download(int(arg)),
    "upload": lambda arg: counting_upload,
    "slow": lambda arg: slow_first_byte(float(arg)),
    "sleepy": lambda arg: sleepy(float(arg)),
}


def workload(spec: str) -> WSGIApp:
    """The WSGI app of a :data:`WORKLOADS` spec such as ``"download:1048576"``.

    :raises ValueError: unknown name.
    """
    name, _, arg = spec.partition(":")
    if name not in WORKLOADS:
        raise ValueError(f"unknown workload {spec!r}; known: {sorted(WORKLOADS)}")
    return WORKLOADS[name](arg)


# ------------------------------------------------------------------ subprocess server
def serve_from_argv(argv: list[str]) -> None:
    """``python -m wsgi_bridge.testing KIND SPEC``: print the port, serve until stdin EOF.

    Serves :func:`workload` ``(SPEC)`` on a :class:`BridgeServer` of ``KIND`` with 4
    threads and 2 GiB body limits.
    """
    kind, spec = argv[0], argv[1]
    server = BridgeServer(
        workload(spec),
        kind=kind,
        workers=4,
        server_kwargs={"max_body_size": 2 * 1024**3},
        max_body_size=2 * 1024**3,  # ignored by kind="tornado"
    ).start()
    print(server.port, flush=True)
    try:
        sys.stdin.read()
    finally:
        server.stop()


class SubprocessServer:
    """A :class:`BridgeServer` serving a workload in a child process.

    :param kind: one of :data:`KINDS`.
    :param spec: a :data:`WORKLOADS` spec, e.g. ``"download:67108864"``.

    A context manager; ``port`` is set on entry, :meth:`rss` reads the child's
    resident memory (bytes, via psutil), so what is measured is only the server.
    """

    def __init__(self, kind: str, spec: str) -> None:
        self.kind = kind
        self.spec = spec
        self.port = 0

    def __enter__(self) -> SubprocessServer:
        import psutil

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wsgi_bridge.testing", self.kind, self.spec],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())
        self.ps = psutil.Process(self.proc.pid)
        return self

    def rss(self) -> int:
        """Resident set size of the server process, in bytes."""
        return int(self.ps.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.proc.stdout.close()


# ------------------------------------------------------------------ streaming clients
def stream_download(port: int, path: str = "/", block: int = 65536) -> tuple[int, float]:
    """GET ``path`` and discard the body; returns ``(body_bytes, seconds_to_first_byte)``.

    :param block: bytes read per ``read1`` call.
    """
    conn = HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        start = time.monotonic()
        conn.request("GET", path)
        resp = conn.getresponse()
        first = resp.read1(block)
        ttfb = time.monotonic() - start
        total = len(first)
        while piece := resp.read1(block):
            total += len(piece)
        return total, ttfb
    finally:
        conn.close()


def stream_upload(port: int, size: int, block: int = 65536) -> bytes:
    """POST ``size`` zero bytes in ``block``-byte pieces with ``Content-Length``.

    :returns: the response body.
    """
    conn = HTTPConnection("127.0.0.1", port, timeout=120)
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
    serve_from_argv(sys.argv[1:])
