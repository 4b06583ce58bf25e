"""Shadow comparison on live traffic: run the other side of a request and compare the answers.

For a ported route in ``SHADOW_ROUTES`` (:mod:`server.cutover.plan`), a sampled
``GET``/``HEAD`` request is served as usual by its primary side -- the native
handler, or the Flask view when the route is switched back or the client is on
Flask's side of a canary -- and, once that response was written, the *other*
side runs the same request in the background. The two answers are compared by
the rules of the parity tests (:mod:`server.cutover.compare`), counted on
``/metrics`` (``shadow_comparisons_total``, ``shadow_skipped_total``,
:mod:`server.cutover.metrics`), and a mismatch is logged with a bounded diff.
In the manner of GitHub's Scientist: the old path stays in charge, the new one
is tried on real requests.

Guarantees:

* **It never changes the user's response.** The primary's response is only
  observed (:func:`wsgi_bridge.http1.observe_response`) and the shadow starts
  after it ended; whatever the shadow answers -- ``Set-Cookie`` and every other
  header included -- goes nowhere but the comparison. Nothing the shadow does
  raises into the IOLoop.
* **Safe methods only.** :class:`~server.cutover.routing.CutoverMatcher` calls
  :meth:`ShadowRunner.begin` for ``GET`` and ``HEAD`` only (RFC 9110 section
  9.2.1), whatever the settings say.
* **Real traffic first.** The shadow is skipped (``busy``) when a request waits
  in the bridge's queue, when at most one thread of the shared pool is idle, or
  when :data:`MAX_IN_FLIGHT` shadows already run.
* **Same user, no cookies.** The shadow gets the primary's request headers
  (``Cookie`` included, so both sides see the same user); cookies it sets are
  dropped. Its access line and ``http_requests_total`` are not written: the
  Flask view is called as a WSGI application directly (not through the bridge),
  and the native handler's requests are marked so the application's
  ``log_function`` skips them. Lines the shadow side logs carry the primary's
  request id.
* **Bounded memory.** Each side's body is kept up to :data:`CAPTURE_MAX_BYTES`;
  over it the request is skipped (``too_large``) and the bytes are dropped. A
  logged diff is cut by :func:`server.cutover.compare.bounded`.

Limits:

* The two runs are not atomic: state can change between them (a row that
  progresses, a timestamp). Declare such fields in the native handler's
  ``shadow_ignore`` (``tornado_handlers.base.BaseHandler``), or the route shows
  mismatches that are not bugs.
* A primary response that never ends (the client went away) is dropped without
  being counted.
* The shadow costs a second run of the request (its database reads included):
  sample a busy route with ``SHADOW_ROUTES=name:percent``.
"""

from __future__ import annotations

import asyncio
import io
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future as ConcurrentFuture
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import tornado.web
from flask import Flask
from tornado import httputil
from tornado.ioloop import IOLoop
from tornado.log import access_log

from server.cutover.compare import COMPARED_HEADERS, Reply, bounded, differences
from server.cutover.metrics import CutoverMetrics
from server.cutover.plan import RoutePlan, Side
from server.cutover.routing import NativeTarget
from wsgi_bridge import WSGIContainer
from wsgi_bridge.compat import busy_threads
from wsgi_bridge.deadline import CLIENT_DISCONNECTED_KEY, DEADLINE_KEY, NO_DEADLINE, DisconnectEvent
from wsgi_bridge.environ import build_environ
from wsgi_bridge.file_wrapper import FileWrapper
from wsgi_bridge.http1 import observe_response
from wsgi_bridge.request_id import REQUEST_ID_ATTR, ensure_request_id

log = logging.getLogger("hybrid.cutover.shadow")

CAPTURE_MAX_BYTES = 256 * 1024
"""Bytes of one side's response body kept for the comparison; over it: ``too_large``."""

MAX_IN_FLIGHT = 2
"""Shadows running at once in one process; a sampled request over it is skipped ``busy``."""

LOG_WINDOW_SECONDS = 60.0
"""A route's mismatches (and its errors) are logged at most once per this many seconds."""

NATIVE_TIMEOUT_SECONDS = 60.0
"""Seconds a native shadow may take to finish its response before it counts as ``error``."""

SHADOW_ATTR = "_hybrid_shadow"
"""Attribute set to ``True`` on the request a native shadow runs (:func:`is_shadow`)."""


def is_shadow(request: httputil.HTTPServerRequest) -> bool:
    """Whether ``request`` is a shadow's copy (its access line and metrics are skipped)."""
    return bool(getattr(request, SHADOW_ATTR, False))


@dataclass
class _Body:
    """A response captured up to ``limit`` bytes of body."""

    limit: int
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0
    too_large: bool = False

    def add(self, chunk: bytes) -> None:
        if self.too_large or not chunk:
            return
        self.size += len(chunk)
        if self.size > self.limit:
            self.too_large = True
            self.chunks.clear()
        else:
            self.chunks.append(chunk)

    def reply(self, side: Side) -> Reply:
        return Reply(side, self.status, self.headers, b"".join(self.chunks))


def _header_dict(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Header pairs as :class:`~server.cutover.compare.Reply` keeps them: lower-case names,
    repeated ones joined with ``", "``."""
    headers: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


class _PrimaryCapture:
    """A :class:`~wsgi_bridge.http1.ResponseObserver` keeping the primary's response."""

    def __init__(self, limit: int, finished: Callable[[_Body], None]) -> None:
        self.body = _Body(limit)
        self._finished = finished

    def on_headers(
        self, start_line: httputil.ResponseStartLine, headers: httputil.HTTPHeaders
    ) -> None:
        self.body.status = start_line.code
        self.body.headers = _header_dict(headers.get_all())

    def on_data(self, chunk: bytes) -> None:
        self.body.add(chunk)

    def on_finish(self) -> None:
        # Called inside the connection's finish(): leave it at once, go on later.
        IOLoop.current().add_callback(self._finished, self.body)


class _CaptureConnection(httputil.HTTPConnection):
    """Where a native shadow writes its response: kept (bounded), never sent.

    :param context: the primary connection's context (address, protocol).
    :param limit: bytes of body kept.
    """

    def __init__(self, context: object, limit: int) -> None:
        self.context = context
        self.body = _Body(limit)
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def set_close_callback(self, callback: Callable[[], None] | None) -> None:
        """Nothing to close: the shadow has no socket."""

    def write_headers(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
        chunk: bytes | None = None,
    ) -> asyncio.Future[None]:
        """Keep the status and headers (and ``chunk``)."""
        if isinstance(start_line, httputil.ResponseStartLine):
            self.body.status = start_line.code
        self.body.headers = _header_dict(headers.get_all())
        return self.write(chunk or b"")

    def write(self, chunk: bytes) -> asyncio.Future[None]:
        """Keep ``chunk`` (up to the limit)."""
        self.body.add(chunk)
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def finish(self) -> None:
        """The response ended."""
        if not self.finished.done():
            self.finished.set_result(None)


@dataclass(frozen=True)
class _Run:
    """One shadowed request: what the comparison and its log line need."""

    route: str
    method: str
    path: str
    primary: Side
    native: NativeTarget
    request_id: str

    def fields(self, result: str) -> dict[str, str]:
        """The log record's structured fields (``extra=``): one JSON key each."""
        return {
            "request_id": self.request_id,
            "route": self.route,
            "result": result,
            "primary": self.primary,
            "method": self.method,
            "path": self.path,
        }


class _LogWindows:
    """At most one log line per key and window; counts the lines left out (thread-safe)."""

    def __init__(self, seconds: float, clock: Callable[[], float]) -> None:
        self.seconds = seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], list[float]] = {}  # key -> [logged at, left out]

    def admit(self, key: tuple[str, str]) -> int | None:
        """``None`` to stay quiet; else log now, with this many left out since the last line."""
        now = self._clock()
        with self._lock:
            window = self._windows.get(key)
            if window is not None and now - window[0] < self.seconds:
                window[1] += 1
                return None
            left_out = int(window[1]) if window is not None else 0
            self._windows[key] = [now, 0]
            return left_out


class ShadowRunner:
    """Runs the other side of sampled safe requests and compares the answers.

    The :class:`~server.cutover.routing.Shadow` of the service (``server/build.py``).

    Wraps ``application.settings["log_function"]`` so that a native shadow writes
    no access line and no request metrics.

    :param application: the Tornado application (native shadows run in it).
    :param flask_app: the Flask app (run directly as a WSGI application for a Flask shadow).
    :param container: the WSGI bridge: its queue, thread count, mount
        (``script_name``) and trusted proxies.
    :param executor: the shared pool the shadows run on.
    :param metrics: where comparisons and skips are counted.
    :param capture_max_bytes: bytes of each body kept (:data:`CAPTURE_MAX_BYTES`).
    :param max_in_flight: shadows at once (:data:`MAX_IN_FLIGHT`).
    :param log_window: seconds between two log lines of one route (:data:`LOG_WINDOW_SECONDS`).
    :param sample: returns a number in ``[0, 100)`` per request (default uniform random).
    :param clock: monotonic seconds, for the log windows.

    :ivar in_flight: shadows running now (IOLoop thread).
    """

    def __init__(
        self,
        application: tornado.web.Application,
        flask_app: Flask,
        container: WSGIContainer,
        executor: ThreadPoolExecutor,
        metrics: CutoverMetrics,
        *,
        capture_max_bytes: int = CAPTURE_MAX_BYTES,
        max_in_flight: int = MAX_IN_FLIGHT,
        log_window: float = LOG_WINDOW_SECONDS,
        sample: Callable[[], float] = lambda: random.random() * 100,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.application = application
        self.flask_app = flask_app
        self.container = container
        self.executor = executor
        self.metrics = metrics
        self.capture_max_bytes = capture_max_bytes
        self.max_in_flight = max_in_flight
        self._sample = sample
        self._windows = _LogWindows(log_window, clock)
        self.in_flight = 0
        self._running: set[asyncio.Future[None]] = set()
        application.settings["log_function"] = _skipping_shadows(
            application.settings.get("log_function")
        )

    @property
    def log_window(self) -> float:
        """Seconds between two log lines of one route (and kind: mismatch, error)."""
        return self._windows.seconds

    @log_window.setter
    def log_window(self, seconds: float) -> None:
        self._windows.seconds = seconds

    # ------------------------------------------------------------------ IOLoop side
    def begin(
        self,
        request: httputil.HTTPServerRequest,
        plan: RoutePlan,
        primary: Side,
        native: NativeTarget,
    ) -> None:
        """Sample ``request`` and, if sampled, watch its response (IOLoop thread).

        :param request: a ``GET``/``HEAD`` request of a shadowed route, before it is served.
        :param plan: the route's plan (``shadow_percent``).
        :param primary: the side that serves the request.
        :param native: the native handler of the route (run when ``primary`` is Flask).
        """
        if plan.shadow_percent < 100 and self._sample() >= plan.shadow_percent:
            return  # not sampled: nothing else is done for this request
        run = _Run(
            plan.name,
            request.method or "GET",
            request.path,
            primary,
            native,
            ensure_request_id(request),
        )
        try:
            capture = _PrimaryCapture(
                self.capture_max_bytes, lambda body: self._primary_finished(request, run, body)
            )
            if not observe_response(request, capture):
                self.metrics.skip(run.route, "unsupported")
        except Exception as error:  # routing goes on whatever happens here
            self._failed(run, error)

    def busy(self) -> bool:
        """Whether real traffic needs the pool: a queued bridge request, at most one idle
        thread outside ``RESERVED_THREADS`` (a shadow never eats the reserve native work
        relies on; threads busy with anything count, a feature's own work included),
        or :attr:`max_in_flight` shadows running (IOLoop thread)."""
        settings = self.flask_app.extensions["settings"]
        outside_reserve = settings.threads - settings.reserved_thread_count
        return (
            self.in_flight >= self.max_in_flight
            or self.container.waiting > 0
            or busy_threads(self.executor) >= outside_reserve - 1
        )

    def _primary_finished(
        self, request: httputil.HTTPServerRequest, run: _Run, primary: _Body
    ) -> None:
        try:
            if primary.too_large:
                self.metrics.skip(run.route, "too_large")
                return
            if self.busy():
                self.metrics.skip(run.route, "busy")
                return
            if run.primary == "native":
                self._start_flask(request, run, primary)
            else:
                self._start_native(request, run, primary)
        except Exception as error:  # nothing may raise into the IOLoop
            self._failed(run, error)

    def _start_flask(self, request: httputil.HTTPServerRequest, run: _Run, primary: _Body) -> None:
        container = self.container
        environ = build_environ(
            request,
            wsgi_input=io.BytesIO(),
            request_id=ensure_request_id(request),
            script_name=container.script_name,
            trusted_proxies=container.trusted_proxies,
            file_wrapper=FileWrapper,
            server_software=container.server_software,
        )
        environ[CLIENT_DISCONNECTED_KEY] = DisconnectEvent()
        environ[DEADLINE_KEY] = NO_DEADLINE
        self.in_flight += 1
        job = self.executor.submit(self._flask_and_compare, environ, run, primary)
        loop = IOLoop.current()
        job.add_done_callback(lambda _: loop.add_callback(self._done))

    def _start_native(self, request: httputil.HTTPServerRequest, run: _Run, primary: _Body) -> None:
        connection = _CaptureConnection(
            getattr(request.connection, "context", None), self.capture_max_bytes
        )
        headers = httputil.HTTPHeaders()
        for name, value in request.headers.get_all():
            headers.add(name, value)
        start_line = httputil.RequestStartLine(
            request.method or "GET", request.uri or request.path, request.version
        )
        copy = httputil.HTTPServerRequest(
            start_line=start_line,
            headers=headers,
            body=b"",
            connection=connection,
        )
        # As the primary saw them (X-Forwarded-* of trusted proxies applied).
        copy.remote_ip = request.remote_ip
        copy.protocol = request.protocol
        copy.host = request.host
        copy.host_name = request.host_name
        setattr(copy, REQUEST_ID_ATTR, ensure_request_id(request))
        setattr(copy, SHADOW_ATTR, True)
        self.in_flight += 1
        running = asyncio.ensure_future(self._native_and_compare(copy, connection, run, primary))
        self._running.add(running)  # the loop keeps only a weak reference
        running.add_done_callback(self._running.discard)
        running.add_done_callback(lambda _: self._done())

    def _done(self) -> None:
        self.in_flight -= 1

    async def _native_and_compare(
        self,
        request: httputil.HTTPServerRequest,
        connection: _CaptureConnection,
        run: _Run,
        primary: _Body,
    ) -> None:
        try:
            target = run.native
            delegate = self.application.get_handler_delegate(
                request,
                target.handler_class,
                dict(target.kwargs),
                list(target.path_args),
                dict(target.path_kwargs),
            )
            delegate.execute()
            await asyncio.wait_for(asyncio.shield(connection.finished), NATIVE_TIMEOUT_SECONDS)
            shadow = connection.body
            if shadow.too_large:
                self.metrics.skip(run.route, "too_large")
                return
            flask = primary.reply("flask")
            native = shadow.reply("native")
            compared: ConcurrentFuture[None] = self.executor.submit(
                self._compare, run, flask, native
            )
            await asyncio.wrap_future(compared)
        except Exception as error:
            self._failed(run, error)

    # ------------------------------------------------------------------ worker side
    def _flask_and_compare(self, environ: dict[str, Any], run: _Run, primary: _Body) -> None:
        """Run the Flask view as a WSGI application, then compare (worker thread)."""
        try:
            shadow = _call_wsgi(self.flask_app, environ, self.capture_max_bytes)
            if shadow.too_large:
                self.metrics.skip(run.route, "too_large")
                return
            self._compare(run, shadow.reply("flask"), primary.reply("native"))
        except Exception as error:
            self._failed(run, error)

    def _compare(self, run: _Run, flask: Reply, native: Reply) -> None:
        """Compare, count and (once per window) log a mismatch (any thread)."""
        handler = run.native.handler_class
        unheeded = {name.lower() for name in getattr(handler, "shadow_ignore_headers", ())}
        headers = [name for name in COMPARED_HEADERS if name not in unheeded]
        ignore = getattr(handler, "shadow_ignore", ())
        found = differences(flask, native, headers=headers, ignore=ignore)
        if not found:
            self.metrics.compared(run.route, "match")
            return
        left_out = self._windows.admit((run.route, "mismatch"))
        if left_out is not None:
            log.warning(
                "shadow mismatch on route %s: %s %s, primary %s, flask and native differ "
                "(%d more mismatches of the route since the last line were not logged):\n%s",
                run.route,
                run.method,
                run.path,
                run.primary,
                left_out,
                "\n".join(f"  {line}" for line in bounded(found)),
                extra=run.fields("mismatch"),
            )
        self.metrics.compared(run.route, "mismatch")  # after the log line: counted is logged

    def _failed(self, run: _Run, error: BaseException) -> None:
        """Count and (once per window) log a shadow that could not run or compare (any thread)."""
        try:
            left_out = self._windows.admit((run.route, "error"))
            if left_out is not None:
                shadow = "flask" if run.primary == "native" else "native"
                (reason,) = bounded([f"{type(error).__name__}: {error}"], max_lines=1)
                log.warning(
                    "shadow error on route %s: %s %s, primary %s, the %s shadow failed: %s "
                    "(%d more errors of the route since the last line were not logged)",
                    run.route,
                    run.method,
                    run.path,
                    run.primary,
                    shadow,
                    reason,
                    left_out,
                    extra=run.fields("error"),
                )
            self.metrics.compared(run.route, "error")
        except Exception:  # pragma: no cover - the last guard of the IOLoop
            pass


def _call_wsgi(app: Callable[..., Iterable[bytes]], environ: dict[str, Any], limit: int) -> _Body:
    """Call a WSGI application and keep its response up to ``limit`` bytes (PEP 3333).

    The iterable's ``close()`` is called whatever happens; reading stops once the
    body went over ``limit``.
    """
    body = _Body(limit)

    def start_response(
        status: str,
        headers: list[tuple[str, str]],
        exc_info: tuple[type[BaseException], BaseException, TracebackType] | None = None,
    ) -> Callable[[bytes], None]:
        if exc_info is not None and body.size:  # body bytes already out: too late (PEP 3333)
            raise exc_info[1].with_traceback(exc_info[2])
        body.status = int(status.split(" ", 1)[0])
        body.headers = _header_dict(headers)
        return body.add

    result = app(environ, start_response)
    try:
        for chunk in result:
            body.add(chunk)
            if body.too_large:
                break
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return body


def _skipping_shadows(log_function: Callable[[Any], None] | None) -> Callable[[Any], None]:
    """An application ``log_function`` that skips shadow requests and otherwise calls
    ``log_function`` (or logs as Tornado does by default when there is none)."""

    def log_request(handler: Any) -> None:
        if is_shadow(handler.request):
            return
        if log_function is not None:
            log_function(handler)
        else:
            _tornado_log_request(handler)

    return log_request


def _tornado_log_request(handler: tornado.web.RequestHandler) -> None:
    """``tornado.web.Application.log_request`` with no ``log_function`` setting."""
    status = handler.get_status()
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    request_time = 1000.0 * handler.request.request_time()
    access_log.log(level, "%d %s %.2fms", status, handler._request_summary(), request_time)
