"""`WSGIContainer`: runs a WSGI application on a thread pool behind Tornado."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from tornado import httputil
from tornado.concurrent import Future
from tornado.ioloop import IOLoop

from .access_log import STATUS_CLIENT_CLOSED, log_access
from .admission import DEFAULT_QUEUE_INTERVAL, DEFAULT_QUEUE_TARGET, QueueDelayController
from .compat import executor_max_workers
from .deadline import (
    CLIENT_DISCONNECTED_KEY,
    DEADLINE_KEY,
    NO_DEADLINE,
    Deadline,
    DisconnectEvent,
)
from .environ import DEFAULT_SERVER_SOFTWARE, NotMounted, build_environ
from .exchange import Exchange, ExchangeConfig
from .file_wrapper import FileWrapper
from .input import BufferedInput
from .lane import ExecutorLane
from .proxy import TrustedProxies
from .request_id import ensure_request_id
from .types import HeaderList, Job, WSGIApp

log = logging.getLogger("wsgi_bridge")

#: Default ``max_body_size``: 100 MiB, Tornado's own default ``max_buffer_size``.
DEFAULT_MAX_BODY_SIZE = 100 * 1024 * 1024
#: Default ``response_buffer_size``: 1 MiB unflushed per response.  With 256 KiB a
#: streaming worker blocked (and crossed threads) every 4 chunks of 64 KiB: S5 ran at
#: ~0.7x gunicorn; with 1 MiB at ~1.0x, memory still bounded per response.
DEFAULT_RESPONSE_BUFFER_SIZE = 1024 * 1024
#: Default ``request_buffer_size``: 64 KiB of upload buffered ahead of the application.
DEFAULT_REQUEST_BUFFER_SIZE = 64 * 1024
#: Default ``max_queue`` per worker thread: ``max_queue = 64 * max_workers``.  Only a
#: hard cap for memory: how long requests wait is governed by ``queue_target`` and
#: ``queue_interval`` (see :mod:`wsgi_bridge.admission`).
DEFAULT_QUEUE_PER_WORKER = 64


def default_worker_count() -> int:
    """Threads of the container's own pool: ``min(32, os.cpu_count() + 4)``.

    The same rule as ``concurrent.futures.ThreadPoolExecutor``'s default.
    """
    return min(32, (os.cpu_count() or 1) + 4)


class WSGIContainer:
    """Serve a WSGI application from Tornado, one worker thread per request.

    A drop-in replacement for ``tornado.wsgi.WSGIContainer(app, executor)`` that
    streams responses with backpressure, streams uploads, bounds admission, never
    leaves a request hanging and follows PEP 3333 closely.  Mount it as the last rule
    with :class:`~wsgi_bridge.handler.WSGIFallbackHandler` (streaming uploads, correct
    access log); Tornado's plain ``FallbackHandler`` or ``HTTPServer(container)``
    work too, with the body read by Tornado first.

    :param wsgi_application: the WSGI callable, e.g. a Flask app.
    :param executor: a ``concurrent.futures.ThreadPoolExecutor`` (shared with the rest
        of the process is fine).  ``None``: the container creates its own with
        :func:`default_worker_count` threads named ``wsgi-bridge``, shut down by
        :meth:`close`.  Each request is exactly one job on it, handed over in arrival
        order (FIFO service).
    :param max_workers: threads serving requests at most, the concurrency assumed
        for admission.  The container never has more than this many jobs in the
        executor (running or queued there): the rest wait in its own FIFO
        (:class:`~wsgi_bridge.lane.ExecutorLane`) and each finished job hands the
        next one over.  So an executor shared with other work and larger than
        ``max_workers`` keeps its other threads free for that work, which then never
        queues behind requests (the service passes ``settings.threads`` minus
        ``settings.reserved_threads``).  Without an executor it is the size of the
        container's own pool (default :func:`default_worker_count`).  Omitted with a
        caller's executor (the ``tornado.wsgi.WSGIContainer(app, executor)`` drop-in
        form), it is read from the executor through
        :func:`~wsgi_bridge.compat.executor_max_workers`, else
        :func:`default_worker_count`.
    :param max_queue: hard cap, in requests, of those admitted beyond
        ``max_workers`` (waiting for a thread).  ``None`` (the default) means
        ``DEFAULT_QUEUE_PER_WORKER * max_workers`` = ``64 * max_workers``: a bound for
        memory, not for waiting time.  Beyond ``max_workers + max_queue`` requests in
        flight, requests get 503.
    :param queue_target: acceptable queueing delay in seconds (default 0.1): the
        time from handing a request to the pool to a thread starting it.
    :param queue_interval: seconds the queueing delay must stay at or above
        ``queue_target`` before arriving requests are refused with 503 (default 0.5);
        see :class:`~wsgi_bridge.admission.QueueDelayController`.  Bursts are admitted
        whole (up to ``max_queue``) and served in waves.
    :param request_timeout: seconds after arrival by which the application must have
        started its response (``None``, the default: no deadline).  Otherwise the
        client gets ``504`` and the worker thread is abandoned: it runs on until the
        application returns, its output is discarded, ``close()`` still runs once.
        The application sees the deadline as ``environ["wsgi_bridge.deadline"]``
        (:class:`~wsgi_bridge.deadline.Deadline`).
    :param retry_after: seconds put in ``Retry-After`` of 503 responses (default 1).
    :param max_body_size: largest request body in bytes (default 100 MiB); a larger
        ``Content-Length`` gets 413 before the application runs, a chunked upload
        growing past it is stopped (413, or connection closed if the response had
        started).  With :class:`WSGIFallbackHandler` this *replaces* the
        ``HTTPServer(max_body_size=...)`` limit for fallback requests.
    :param response_buffer_size: bytes of response a worker may leave unflushed before
        it blocks (backpressure high-water mark; default 1 MiB).
    :param request_buffer_size: bytes of upload buffered ahead of the application
        (default 64 KiB).  Bodies that fit are read completely before the application
        is dispatched (no thread waits on a slow client); larger or chunked ones are
        dispatched once this much arrived and then streamed through a pipe of this size.
    :param script_name: mount prefix, e.g. ``"/legacy"`` (no trailing slash; default
        ``""``).  Requests outside it get 404 from the bridge without the application.
    :param trusted_proxies: IP addresses or CIDRs (``["10.0.0.0/8"]`` or the string
        ``"10.0.0.0/8, 127.0.0.1"``) whose ``X-Forwarded-For/-Proto/-Host`` are
        honoured (default: none).
    :param server_software: the environ's ``SERVER_SOFTWARE`` (PEP 3333, RFC 3875
        §4.1.17); default :data:`~wsgi_bridge.environ.DEFAULT_SERVER_SOFTWARE`,
        ``"wsgi_bridge TornadoServer/<tornado.version>"``.
    :raises ValueError: for a negative size, ``max_workers < 1``, ``queue_target``
        or ``request_timeout`` not > 0, a negative ``queue_interval``, or a
        ``script_name`` not starting with ``/``.
    """

    def __init__(
        self,
        wsgi_application: WSGIApp,
        executor: concurrent.futures.Executor | None = None,
        *,
        max_workers: int | None = None,
        max_queue: int | None = None,
        queue_target: float = DEFAULT_QUEUE_TARGET,
        queue_interval: float = DEFAULT_QUEUE_INTERVAL,
        request_timeout: float | None = None,
        retry_after: int = 1,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        response_buffer_size: int = DEFAULT_RESPONSE_BUFFER_SIZE,
        request_buffer_size: int = DEFAULT_REQUEST_BUFFER_SIZE,
        script_name: str = "",
        trusted_proxies: Iterable[str] | str = (),
        server_software: str = DEFAULT_SERVER_SOFTWARE,
    ) -> None:
        self.application = wsgi_application
        self._owns_executor = executor is None
        if max_workers is None:
            given = None if executor is None else executor_max_workers(executor)
            max_workers = given or default_worker_count()
        if max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {max_workers}")
        if executor is None:
            executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=max_workers, thread_name_prefix="wsgi-bridge"
            )
        self.executor = executor
        self.max_workers: int = int(max_workers)
        #: Keeps at most ``max_workers`` of this container's jobs in ``executor``.
        self.lane = ExecutorLane(executor, self.max_workers)
        self.max_queue: int = (
            DEFAULT_QUEUE_PER_WORKER * self.max_workers if max_queue is None else int(max_queue)
        )
        for name, value in (
            ("max_queue", self.max_queue),
            ("max_body_size", max_body_size),
            ("response_buffer_size", response_buffer_size),
            ("request_buffer_size", request_buffer_size),
        ):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        script_name = script_name.rstrip("/")
        if script_name and not script_name.startswith("/"):
            raise ValueError(f"script_name must start with '/': {script_name!r}")
        self.retry_after = int(retry_after)
        self.max_body_size = int(max_body_size)
        self.response_buffer_size = int(response_buffer_size)
        self.request_buffer_size = max(1, int(request_buffer_size))
        self.script_name = script_name
        self.trusted_proxies = TrustedProxies(trusted_proxies)
        self.server_software = server_software
        if request_timeout is not None and not request_timeout > 0:
            raise ValueError(f"request_timeout must be > 0 seconds, got {request_timeout}")
        self.request_timeout = None if request_timeout is None else float(request_timeout)
        self.admission = QueueDelayController(
            queue_target, queue_interval, self.max_workers, self.max_workers + self.max_queue
        )
        self.draining = False
        self._admitted = 0
        self._abandoned = 0
        # Exchanges handed to the pool, in order, until the IOLoop sees them started.
        self._waiting: deque[Exchange] = deque()
        self._idle_waiters: list[Future[None]] = []
        self._retry_after_headers = [("Retry-After", str(self.retry_after))]
        self.exchange_config = ExchangeConfig(
            application=wsgi_application,
            max_body_size=self.max_body_size,
            request_buffer_size=self.request_buffer_size,
            response_buffer_size=self.response_buffer_size,
            dispatch=self.dispatch,
            draining=self.is_draining,
            refusal_headers=self._retry_after_headers,
            queued=self._waiting.append,
            late=self.admission.late,
        )

    # ----------------------------------------------------------------- public API
    @property
    def in_flight(self) -> int:
        """Requests admitted and not yet finished (running or waiting for a thread)."""
        return self._admitted

    def is_draining(self) -> bool:
        """True once :meth:`drain` was called: new requests get 503."""
        return self.draining

    @property
    def admission_limit(self) -> int:
        """``max_workers + max_queue``: the hard cap of requests in flight before 503.

        Below it, :attr:`admission` (queueing delay) decides.
        """
        return self.max_workers + self.max_queue

    @property
    def abandoned(self) -> int:
        """Worker threads still running an application whose request got 504."""
        return self._abandoned

    @property
    def waiting(self) -> int:
        """Requests handed to the pool that no worker thread has started yet (IOLoop):
        those in the executor's queue and those in :attr:`lane`'s."""
        self._observe_starts()
        return len(self._waiting)

    async def drain(self, timeout: float) -> bool:
        """Stop admitting requests and wait for those in flight (graceful shutdown).

        Call after ``HTTPServer.stop()`` and before ``executor.shutdown()``.  From the
        first call on, new requests get ``503`` with ``Retry-After`` and
        ``Connection: close``, and every response closes its keep-alive connection.

        :param timeout: seconds to wait at most.
        :returns: True when no request is in flight any more, False on timeout.
        """
        self.draining = True
        if self._admitted == 0:
            return True
        waiter: Future[None] = Future()
        self._idle_waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except TimeoutError:
            return False
        finally:
            if waiter in self._idle_waiters:
                self._idle_waiters.remove(waiter)
        return True

    def close(self) -> None:
        """Shut down the container's own executor (no-op for a caller's executor)."""
        if self._owns_executor:
            self.executor.shutdown(wait=True)

    def __call__(self, request: httputil.HTTPServerRequest) -> None:
        """Serve ``request`` whose body Tornado already read (``HTTPServer`` callback).

        This is the ``tornado.wsgi.WSGIContainer`` interface, for
        ``tornado.web.FallbackHandler`` or ``HTTPServer(container)``.  Tornado's
        ``FallbackHandler`` logs its own (early, always 200) line; the container also
        logs one line with the real status.
        """
        exchange = self.start(request, self._on_complete)
        if exchange is None:
            return
        request.connection.set_close_callback(exchange.on_close)  # type: ignore[union-attr]
        body = request.body or b""
        if len(body) > self.max_body_size:
            exchange.respond_simple(413, "Request Entity Too Large", close=True)
            return
        if not self.admit(exchange):
            return
        exchange.start_worker(BufferedInput(body))

    # ------------------------------------------------- for WSGIFallbackHandler
    def begin(
        self,
        request: httputil.HTTPServerRequest,
        on_complete: Callable[[Exchange], None],
        *,
        body_length: int,
        has_body: bool,
        default_headers: HeaderList | None = None,
    ) -> Exchange | None:
        """A mount's first step for a request (IOLoop): start, check the size, admit.

        What :class:`~wsgi_bridge.handler.WSGIFallbackHandler` and
        :class:`~wsgi_bridge.mount.WSGIFallback` both do once the request's headers
        (and, without a body, its end) were read.

        :param request: the Tornado request, headers read.
        :param on_complete: as for :meth:`start`.
        :param body_length: the declared ``Content-Length`` in bytes (0 when absent,
            invalid or chunked).
        :param has_body: True for a chunked body or a positive ``Content-Length``: the
            exchange then expects the upload, and the connection's body limit is
            raised so that this container's ``max_body_size`` (and its 413) governs
            instead of Tornado's 400.
        :param default_headers: the mount's default headers, as for :meth:`start`.
        :returns: the admitted exchange, or None when the bridge answered itself:
            404 outside ``script_name``, 413 for a declared body over
            ``max_body_size``, 503 from admission.
        """
        exchange = self.start(request, on_complete, default_headers)
        if exchange is None:
            return None
        if body_length > self.max_body_size:
            exchange.respond_simple(413, "Request Entity Too Large", close=True)
            return None
        if not self.admit(exchange):
            return None
        if has_body:
            connection: Any = request.connection
            if hasattr(connection, "set_max_body_size"):
                connection.set_max_body_size(2 * self.max_body_size + 1)
            exchange.expect_body()
        return exchange

    def start(
        self,
        request: httputil.HTTPServerRequest,
        on_complete: Callable[[Exchange], None],
        default_headers: HeaderList | None = None,
    ) -> Exchange | None:
        """Create the :class:`~wsgi_bridge.exchange.Exchange` for ``request`` (IOLoop).

        :param request: the Tornado request, headers read.
        :param on_complete: called once with the exchange when it is over; it must
            call :meth:`release` (the handler also logs the access line).
        :param default_headers: ``(name, value)`` pairs the mount sends on every
            response, the bridge's own answers included, unless the application
            sets the same name; None for none.
        :returns: the exchange, or None when the bridge answered 404 itself (the path
            is outside ``script_name``).
        """
        request_id = ensure_request_id(request)
        try:
            environ = build_environ(
                request,
                wsgi_input=None,
                request_id=request_id,
                script_name=self.script_name,
                trusted_proxies=self.trusted_proxies,
                file_wrapper=FileWrapper,
                server_software=self.server_software,
            )
        except NotMounted:
            exchange = Exchange(request, {}, request_id, self.exchange_config, on_complete)
            exchange.pump.default_headers = default_headers
            exchange.respond_simple(404, "Not Found")
            return None
        environ[CLIENT_DISCONNECTED_KEY] = DisconnectEvent()
        environ[DEADLINE_KEY] = NO_DEADLINE
        exchange = Exchange(request, environ, request_id, self.exchange_config, on_complete)
        exchange.pump.default_headers = default_headers
        return exchange

    def admit(self, exchange: Exchange) -> bool:
        """Reserve an admission slot, or answer 503 at once (IOLoop, never the executor).

        The decision is :attr:`admission`'s (:mod:`wsgi_bridge.admission`): refused
        when :attr:`admission_limit` requests are in flight, or when the queueing
        delay has stayed above ``queue_target`` for ``queue_interval`` seconds and at
        least ``max_workers`` requests wait.  With ``request_timeout``, the deadline
        starts now.

        :returns: False when the request was refused (503 + ``Retry-After`` sent;
            also while draining, then with ``Connection: close``).
        """
        now = time.monotonic()
        if self.draining:
            exchange.respond_simple(503, "Service Unavailable", self._retry_after_headers, True)
            return False
        self._observe_starts()
        waiting = self._waiting
        oldest = now - waiting[0].dispatched_at if waiting else None
        if not self.admission.admit(now, self._admitted, len(waiting), oldest):
            exchange.respond_simple(503, "Service Unavailable", self._retry_after_headers)
            return False
        self._admitted += 1
        exchange.admitted = True
        exchange.probation = self.admission.above_target
        timeout = self.request_timeout
        if timeout is not None:
            deadline = Deadline(now + timeout)
            exchange.environ[DEADLINE_KEY] = deadline
            exchange.timer = IOLoop.current().call_later(timeout, self._expire, exchange, deadline)
        return True

    def _observe_starts(self) -> None:
        """Feed the delays of the requests that started since last time to the policy."""
        waiting = self._waiting
        admission = self.admission
        while waiting and waiting[0].started_at:
            exchange = waiting.popleft()
            admission.started(exchange.started_at - exchange.dispatched_at, exchange.started_at)

    def _expire(self, exchange: Exchange, deadline: Deadline) -> None:
        """The request's deadline passed (IOLoop): 504 unless its response started."""
        exchange.timer = None
        # Claim the response first, then wake the application: a view woken by its
        # deadline can no longer win the race with the 504.
        answered = exchange.respond_simple(504, "Gateway Timeout")
        deadline.expire()
        if not answered:
            return  # the response had started (or the client had gone)
        pump = exchange.pump
        if pump.dispatched and not pump.completed:
            exchange.abandoned = True
            self._abandoned += 1
            log.warning(
                "WSGI request %s %s timed out after %.3gs (id=%s): 504 sent, worker abandoned",
                exchange.request.method,
                exchange.request.uri,
                self.request_timeout,
                pump.request_id,
            )

    def dispatch(self, job: Job) -> None:
        """Hand ``job`` to the executor, in a copy of the current context, through
        :attr:`lane`: at once while fewer than ``max_workers`` of the container's jobs
        are in the executor, else when one of them finishes (FIFO).

        Called on the IOLoop thread (the lane is thread-safe); ``job`` (no arguments:
        the exchange's bound ``run``) runs on a worker thread.

        One request is exactly one job, so the lane's FIFO, then the executor's, is
        the order of service.  The context is copied here, on the IOLoop, so the job's
        context variables never leak into the next job on the same thread.  The
        queueing delay the admission sees runs from this hand-over to the job's start,
        so it includes the wait in the lane.

        :raises RuntimeError: the executor was shut down (and a slot was free).
        """
        context = contextvars.copy_context()
        self.lane.submit(functools.partial(context.run, job))

    def release(self, exchange: Exchange) -> None:
        """Free the admission slot of a finished exchange and wake :meth:`drain`."""
        if not exchange.admitted:
            return
        exchange.admitted = False
        self._admitted -= 1
        if exchange.timer is not None:
            IOLoop.current().remove_timeout(exchange.timer)
            exchange.timer = None
        if exchange.abandoned:
            exchange.abandoned = False
            self._abandoned -= 1
        self._observe_starts()
        if self._admitted == 0 and self._idle_waiters:
            waiters, self._idle_waiters = self._idle_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _on_complete(self, exchange: Exchange) -> None:
        self.release(exchange)
        status = exchange.status_code or STATUS_CLIENT_CLOSED
        log_access(exchange.request, status, exchange.bytes_sent, "wsgi", exchange.aborted)

    def __repr__(self) -> str:
        return (
            f"<WSGIContainer {self.application!r} workers={self.max_workers} "
            f"max_queue={self.max_queue} queue_target={self.admission.target} "
            f"queue_interval={self.admission.interval} in_flight={self._admitted}>"
        )
