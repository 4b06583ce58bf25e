"""One request through the bridge: its upload, its worker job and its response.

An :class:`Exchange` is what the container and the handler hold for one request.  It
owns three parts, each in its own module, and calls only down into them:

* :class:`~wsgi_bridge.intake.RequestIntake`: the request body in (IOLoop thread);
* :func:`~wsgi_bridge.worker.run_application`: the WSGI call (one worker thread);
* :class:`~wsgi_bridge.pump.ResponsePump`: the response out (both threads).

It knows nothing of its container: what it needs from it comes in an
:class:`ExchangeConfig` (the application, the limits and two callables), shared by
every exchange of one container.  When the exchange is over it calls the
``on_complete`` callback it was given, once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from tornado import httputil
from tornado.concurrent import Future

from .deadline import CLIENT_DISCONNECTED_KEY
from .input import BufferedInput, StreamingInput
from .intake import RequestIntake
from .pump import ResponsePump
from .request_id import current_request_id
from .types import Dispatch, Environ, HeaderList, WSGIApp
from .worker import StartResponse, run_application


@dataclass(frozen=True, slots=True)
class ExchangeConfig:
    """What every exchange of one container needs, built once by the container.

    :ivar application: the WSGI callable.
    :ivar max_body_size: largest request body, in bytes.
    :ivar request_buffer_size: upload bytes buffered ahead of the application.
    :ivar response_buffer_size: unflushed response bytes before the worker blocks.
    :ivar dispatch: runs a job (a no-argument callable) on the worker pool, in a copy
        of the caller's ``contextvars`` context; called on the IOLoop thread; raises
        ``RuntimeError`` when the pool is shut down.
    :ivar draining: returns True while the server drains (responses then close their
        keep-alive connection).
    :ivar refusal_headers: extra headers of a ``503`` when the pool refuses the job,
        e.g. ``[("Retry-After", "1")]``.
    :ivar queued: called on the IOLoop thread with the exchange right after its job
        was handed to the pool (the container measures queueing delay from
        ``dispatched_at`` to ``started_at``); None to skip.
    :ivar late: called on the worker thread as ``late(delay, now)`` (seconds) when
        an exchange admitted on probation starts; True answers ``503`` +
        ``refusal_headers`` instead of running the application.  None to skip.
    """

    application: WSGIApp
    max_body_size: int
    request_buffer_size: int
    response_buffer_size: int
    dispatch: Dispatch
    draining: Callable[[], bool]
    refusal_headers: HeaderList
    queued: Callable[[Exchange], None] | None = None
    late: Callable[[float, float], bool] | None = None


class Exchange:
    """State of one WSGI request/response (created on the IOLoop thread).

    :param request: the Tornado request (never mutated).
    :param environ: the WSGI environ (``wsgi.input`` is set when the worker starts).
    :param request_id: the id from :func:`~wsgi_bridge.request_id.ensure_request_id`.
    :param config: the container's :class:`ExchangeConfig`.
    :param on_complete: called once on the IOLoop with this exchange when it is over
        (response finished or aborted, and no worker job can touch it any more).

    .. warning:: Every method except :meth:`run` is for the IOLoop thread only.
    """

    __slots__ = (
        "_on_complete",
        "abandoned",
        "admitted",
        "config",
        "dispatched_at",
        "environ",
        "intake",
        "probation",
        "pump",
        "request",
        "started_at",
        "timer",
    )

    def __init__(
        self,
        request: httputil.HTTPServerRequest,
        environ: Environ,
        request_id: str,
        config: ExchangeConfig,
        on_complete: Callable[[Exchange], None],
    ) -> None:
        self.request = request
        self.environ = environ
        self.config = config
        self._on_complete = on_complete
        self.pump = ResponsePump(
            request, request_id, config.response_buffer_size, self._completed, config.draining
        )
        self.intake: RequestIntake | None = None
        #: True while this exchange holds an admission slot (the container's business).
        self.admitted = False
        #: ``time.monotonic()`` when the job was handed to the pool (0.0: not yet).
        self.dispatched_at = 0.0
        #: ``time.monotonic()`` when a worker thread started the job (0.0: not yet).
        self.started_at = 0.0
        #: The container's deadline timer handle (``IOLoop.call_later``), if any.
        self.timer: object | None = None
        #: True once the deadline answered 504 while the worker still ran the app.
        self.abandoned = False
        #: True when admitted into a queue already above its delay target.
        self.probation = False

    # ------------------------------------------------------------ what it did
    @property
    def status_code(self) -> int:
        """Status code sent, 0 if none."""
        return self.pump.status_code

    @property
    def bytes_sent(self) -> int:
        """Body bytes handed to the connection."""
        return self.pump.bytes_sent

    @property
    def aborted(self) -> bool:
        """True when the response was cut short (client gone, error after the head)."""
        return self.pump.aborted

    @property
    def done(self) -> Future[None]:
        """Resolved once the exchange completed."""
        return self.pump.done

    # ------------------------------------------------------------ IOLoop side
    def expect_body(self) -> None:
        """A body follows: buffer it; the application starts on EOF or overflow."""
        config = self.config
        self.intake = RequestIntake(
            self.pump, config.max_body_size, config.request_buffer_size, self.start_worker
        )

    def data_received(self, chunk: bytes) -> Future[None] | None:
        """Feed upload bytes; see :meth:`RequestIntake.data_received`."""
        if self.intake is None:
            return None
        return self.intake.data_received(chunk)

    def body_complete(self) -> None:
        """The whole request body arrived (or there is none): start the application."""
        if self.intake is not None:
            self.intake.body_complete()
        elif not self.pump.dispatched and not self.pump.completed:
            self.start_worker(BufferedInput(b""))

    def on_close(self) -> None:
        """The client connection closed: wake the worker, stop the upload, and set
        ``environ["wsgi_bridge.client_disconnected"]`` if the exchange is not over."""
        if not self.pump.completed:
            event = self.environ.get(CLIENT_DISCONNECTED_KEY)
            if event is not None:
                event.set()
        self.pump.on_close()

    def respond_simple(
        self, code: int, reason: str, extra: HeaderList | None = None, close: bool = False
    ) -> bool:
        """Answer without the application; see :meth:`ResponsePump.respond_simple`."""
        return self.pump.respond_simple(code, reason, extra, close)

    def start_worker(self, wsgi_input: BufferedInput | StreamingInput) -> None:
        """Submit :meth:`run` as this request's one executor job (at most once).

        If the pool refuses it (shut down), the client gets ``503`` and the
        connection closes.
        """
        pump = self.pump
        if pump.dispatched:
            return
        self.environ["wsgi.input"] = wsgi_input
        pump.dispatched = True
        self.dispatched_at = time.monotonic()
        try:
            self.config.dispatch(self.run)
        except RuntimeError:  # executor shut down
            pump.dispatched = False
            pump.respond_simple(503, "Service Unavailable", self.config.refusal_headers, True)
            return
        if self.config.queued is not None:
            self.config.queued(self)

    # ------------------------------------------------------------ worker side
    def run(self) -> None:
        """The worker job: run the application for this request (never raises)."""
        self.started_at = now = time.monotonic()
        pump = self.pump
        # This job runs in its own copy of the dispatcher's context (container.dispatch).
        current_request_id.set(pump.request_id)
        if self.abandoned:  # got its 504 while it waited for a thread: never run the app
            pump.worker_finished()
            return
        config = self.config
        application = config.application
        if (
            self.probation
            and config.late is not None
            and config.late(now - self.dispatched_at, now)
        ):
            application = _Refusal(config.refusal_headers)
        run_application(
            application,
            self.environ,
            StartResponse(pump, self.request, pump.request_id),
        )

    def _completed(self) -> None:
        self._on_complete(self)


class _Refusal:
    """A WSGI application answering ``503`` (+ ``Retry-After``): a request shed late."""

    __slots__ = ("headers",)

    def __init__(self, extra: HeaderList) -> None:
        self.headers = [("Content-Type", "text/plain; charset=utf-8"), *extra]

    def __call__(self, environ: Environ, start_response: Callable[..., object]) -> list[bytes]:
        """Answer ``503 Service Unavailable`` with the container's refusal headers."""
        start_response("503 Service Unavailable", self.headers)
        return [b"Service Unavailable\n"]
