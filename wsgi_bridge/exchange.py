"""The plumbing for one request: IOLoop thread <-> one worker thread.

An :class:`Exchange` is shared by exactly two threads:

* the **IOLoop thread** feeds the request body (:meth:`Exchange.data_received`),
  writes the response with ``request.connection.write_headers/write/finish`` and
  learns about client disconnects (:meth:`Exchange.on_close`);
* one **worker thread** (one executor job, one ``contextvars`` context) calls the
  application, every ``next()`` on its iterable and ``close()``
  (:meth:`Exchange.run`).

The worker hands output over through a small queue guarded by a
``threading.Condition`` and wakes the IOLoop with ``IOLoop.add_callback``; only one
``connection.write`` is outstanding at a time (Tornado's ``HTTP1Connection`` tracks a
single write future) and chunks that pile up meanwhile are coalesced.  When more than
``response_buffer_size`` bytes are unflushed the worker waits on the condition until
the socket drains or the client goes away (backpressure).

A list or tuple body takes the fast path: the worker joins it and posts ONE callback
that writes headers, body and finish at once.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Literal

from tornado import httputil
from tornado.concurrent import Future
from tornado.ioloop import IOLoop
from tornado.iostream import StreamClosedError

from .errors import ClientDisconnected, RequestBodyTooLarge, WSGIAppError
from .framing import ResponsePlan, plan_response, simple_response_headers
from .headers import parse_status, validate_headers
from .input import BufferedInput, StreamingInput
from .types import Environ, ExcInfo, HeaderList

if TYPE_CHECKING:
    from .container import WSGIContainer

log = logging.getLogger("wsgi_bridge")

_SIMPLE_BODIES = {
    404: b"Not Found\n",
    413: b"Request Entity Too Large\n",
    500: b"Internal Server Error\n",
    503: b"Service Unavailable\n",
}


def _completes_declared_length(headers: HeaderList, length: int) -> bool:
    """True if ``headers`` declare a ``Content-Length`` of at most ``length`` bytes."""
    for name, value in headers:
        if len(name) == 14 and name.lower() == "content-length":
            return value.isdigit() and int(value) <= length
    return False


class _StartResponse:
    """The ``start_response`` callable for one request (PEP 3333), used by the worker."""

    __slots__ = ("code", "exchange", "headers", "headers_sent", "reason")

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        self.code: int | None = None
        self.reason = ""
        self.headers: HeaderList = []
        self.headers_sent = False

    def __call__(self, status: str, headers: HeaderList, exc_info: ExcInfo | None = None) -> Any:
        if exc_info is not None:
            try:
                if self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # break the frame <-> traceback cycle (PEP 3333)
        elif self.code is not None:
            raise WSGIAppError("start_response() called a second time without exc_info")
        code, reason = parse_status(status)
        validate_headers(headers)
        self.code, self.reason, self.headers = code, reason, headers
        return self.write

    def write(self, data: bytes) -> None:
        """The legacy ``write()`` callable: send ``data`` now (may block on backpressure).

        :raises TypeError: ``data`` is not bytes.
        :raises ClientDisconnected: the client went away.
        """
        if not isinstance(data, bytes):
            raise TypeError(f"write() expects bytes, not {type(data).__name__}")
        if data and not self.exchange.send(self, data) and self.exchange.closed:
            raise ClientDisconnected("client disconnected")


class Exchange:
    """State of one WSGI request/response; see the module docstring for threads.

    :param container: the owning :class:`~wsgi_bridge.container.WSGIContainer`.
    :param request: the Tornado request (never mutated).
    :param environ: the WSGI environ (``wsgi.input`` is set at dispatch).
    :param request_id: the id from :func:`~wsgi_bridge.request_id.ensure_request_id`.
    :param on_complete: called on the IOLoop once, when the exchange is over (response
        finished or aborted and the worker job returned).
    """

    def __init__(
        self,
        container: WSGIContainer,
        request: httputil.HTTPServerRequest,
        environ: Environ,
        request_id: str,
        on_complete: Any,
    ) -> None:
        self.container = container
        self.request = request
        self.connection: Any = request.connection
        self.environ = environ
        self.request_id = request_id
        self.loop = IOLoop.current()
        self._on_complete = on_complete
        self._cond = threading.Condition(threading.Lock())
        # Shared between threads; guarded by _cond.
        self._closed = False
        self._committed: Literal["", "worker", "loop"] = ""
        self._head: ResponsePlan | None = None
        self._queue: list[bytes] = []
        self._unflushed = 0
        self._finish_requested = False
        self._abort_requested = False
        self._worker_done = False
        self._pump_scheduled = False
        # IOLoop thread only.
        self._writing = False
        self._completed = False
        self.dispatched = False
        self.admitted = False
        self.status_code = 0
        self.bytes_sent = 0
        self.aborted = False
        self.input: BufferedInput | StreamingInput | None = None
        self._pending_body: bytearray | None = None
        self._received = 0
        self._rejected = False
        # Worker thread only.
        self._plan: ResponsePlan | None = None
        self._body_bytes = 0
        self.done: Future[None] = Future()

    @property
    def closed(self) -> bool:
        """True once the client connection is known to be gone."""
        return self._closed

    # ------------------------------------------------------------------ IOLoop side
    def expect_body(self) -> None:
        """Start buffering the request body (IOLoop); dispatch happens on EOF or overflow."""
        self._pending_body = bytearray()

    def data_received(self, chunk: bytes) -> Future[None] | None:
        """Take one piece of request body from Tornado (IOLoop thread).

        Buffers up to ``request_buffer_size`` bytes before the application runs; past
        that the worker is dispatched and reads through a bounded
        :class:`~wsgi_bridge.input.StreamingInput`, whose Future pauses Tornado's
        reading (flow control).  Past ``max_body_size`` the upload is stopped (413).
        """
        if self._rejected or self._completed:
            return None
        self._received += len(chunk)
        if self._received > self.container.max_body_size:
            self.reject_too_large()
            return None
        if isinstance(self.input, StreamingInput):
            return self.input.feed(chunk)
        pending = self._pending_body
        if pending is None:
            return None
        pending += chunk
        if len(pending) <= self.container.request_buffer_size:
            return None
        stream = StreamingInput(self.loop, self.container.request_buffer_size)
        self._pending_body = None
        self.input = stream
        waiter = stream.feed(bytes(pending))
        self.container.dispatch(self)
        return waiter

    def body_complete(self) -> None:
        """The whole request body arrived (IOLoop thread)."""
        if self._rejected or self._completed:
            return
        if isinstance(self.input, StreamingInput):
            self.input.feed_eof()
        elif not self.dispatched:
            pending = self._pending_body
            self._pending_body = None
            self.input = BufferedInput(bytes(pending or b""))
            self.container.dispatch(self)

    def reject_too_large(self) -> None:
        """Stop an upload that outgrew ``max_body_size`` (IOLoop thread).

        413 when no response byte was sent yet; otherwise the connection is closed.
        The application's next ``wsgi.input`` read raises
        :class:`~wsgi_bridge.errors.RequestBodyTooLarge`.
        """
        self._rejected = True
        self._pending_body = None
        if isinstance(self.input, StreamingInput):
            self.input.feed_error(RequestBodyTooLarge("request body exceeds max_body_size"))
        if not self.respond_simple(413, "Request Entity Too Large"):
            self.abort_connection()

    def on_close(self) -> None:
        """The client connection closed (IOLoop thread); wakes a blocked worker."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        if not self._completed:
            self.aborted = True
        if self.input is not None and isinstance(self.input, StreamingInput):
            self.input.feed_error(ClientDisconnected("client disconnected"))
        self._pump()

    def abort_connection(self) -> None:
        """Close the connection now (IOLoop thread), losing unsent output."""
        self.aborted = True
        try:
            self.connection.close()
        finally:
            self.on_close()

    def respond_simple(
        self, code: int, reason: str, extra: HeaderList | None = None, close: bool = False
    ) -> bool:
        """Send a small plain-text response from the IOLoop, without the application.

        :param code: 404, 413, 500 or 503.
        :param reason: reason phrase.
        :param extra: more headers, e.g. ``[("Retry-After", "1")]``.
        :param close: close the connection after the response.
        :returns: False if the worker had already started the response (nothing sent).
        """
        with self._cond:
            if self._committed or self._closed:
                return False
            self._committed = "loop"
        body = _SIMPLE_BODIES.get(code, b"")
        plan = plan_response(
            self.request.method or "GET",
            self.request.version,
            code,
            reason,
            simple_response_headers(body, extra),
            extra_headers=[("X-Request-ID", self.request_id)],
        )
        plan.close_connection = plan.close_connection or close
        try:
            self._write_head(plan, body if plan.body_allowed else b"")
            self.connection.finish()
            if plan.body_allowed:
                self.bytes_sent = len(body)
        except Exception as exc:
            self._write_failed(exc)
        if not self.dispatched or self._worker_done:
            self._complete()
        return True

    def _write_head(self, plan: ResponsePlan, data: bytes) -> Future[None]:
        headers = httputil.HTTPHeaders()
        for name, value in plan.headers:
            headers.add(name, value)
        if (plan.close_connection or self.container.draining) and hasattr(
            self.connection, "_disconnect_on_finish"
        ):
            # Tornado has no public switch for "close after this response"; the
            # attribute is what HTTP1Connection itself uses (Connection: close).
            self.connection._disconnect_on_finish = True
        self.status_code = plan.code
        start_line = httputil.ResponseStartLine("HTTP/1.1", plan.code, plan.reason)
        return self.connection.write_headers(start_line, headers, chunk=data or None)

    def _write_failed(self, exc: BaseException) -> None:
        if not isinstance(exc, StreamClosedError):
            log.error(
                "response to %s %s could not be completed (id=%s): %s",
                self.request.method,
                self.request.uri,
                self.request_id,
                exc,
            )
        self.aborted = True
        stream = getattr(self.connection, "stream", None)
        if stream is not None and not stream.closed():
            self.connection.close()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def write_whole(self, plan: ResponsePlan, body: bytes) -> None:
        """Fast path (IOLoop): headers + whole body + finish in one go, then complete."""
        if not self._closed:
            try:
                data = body if plan.body_allowed else b""
                self._write_head(plan, data)
                self.connection.finish()
                self.bytes_sent = len(data)
            except Exception as exc:
                self._write_failed(exc)
        self._complete()

    def _pump(self) -> None:
        """Move queued output to the connection (IOLoop); one write outstanding at most."""
        if self._completed:
            return
        with self._cond:
            self._pump_scheduled = False
            closed = self._closed
            done = self._worker_done
            if closed:
                self._queue.clear()
                self._unflushed = 0
                self._head = None
                self._finish_requested = self._abort_requested = False
                self._cond.notify_all()
            elif self._writing:
                return
            else:
                plan, self._head = self._head, None
                queue, self._queue = self._queue, []
                finish, self._finish_requested = self._finish_requested, False
                # Abort only once what the application already produced was written,
                # so the client sees the truncated response, then the close.
                abort = self._abort_requested and plan is None and not queue
                if abort:
                    self._abort_requested = False
        if closed:
            # Without a worker job (the upload broke off before dispatch) nobody
            # else will ever complete the exchange: do it now, so its admission
            # slot comes back.
            if done or not self.dispatched:
                self._complete()
            return
        if abort:
            self.abort_connection()
            return
        data = queue[0] if len(queue) == 1 else b"".join(queue)
        n = len(data)
        future: Future[None] | None = None
        try:
            if plan is not None:
                future = self._write_head(plan, data)
            elif data:
                future = self.connection.write(data)
            self.bytes_sent += n
            if finish:
                self.connection.finish()
        except Exception as exc:
            future = None
            self._write_failed(exc)
        if future is not None and not self._closed:
            self._writing = True
            future.add_done_callback(lambda _f: self._on_written(n))
        elif n:
            with self._cond:
                self._unflushed = max(0, self._unflushed - n)
                self._cond.notify_all()
        if self._closed:
            self._pump()
        elif not self._writing and (done or self._abort_requested):
            if self._abort_requested:
                self._pump()
            else:
                self._complete()

    def _on_written(self, n: int) -> None:
        with self._cond:
            self._unflushed -= n
            self._cond.notify_all()
        self._writing = False
        self._pump()

    def _complete(self) -> None:
        if self._completed:
            return
        self._completed = True
        if isinstance(self.input, StreamingInput):
            # Release a paused upload; the application is done with it.
            self.input.feed_error(ClientDisconnected("response already complete"))
        if self.status_code == 0:
            self.aborted = True
        try:
            self._on_complete(self)
        finally:
            if not self.done.done():
                self.done.set_result(None)

    # ------------------------------------------------------------------ worker side
    def run(self) -> None:
        """Run the application for this request (worker thread, one context).

        Calls the application, iterates its result, calls ``close()`` exactly once
        (also after errors and early stops), then hands the end of the response to the
        IOLoop.  Never raises: errors become a 500 or a closed connection, logged once
        on the ``wsgi_bridge`` logger.
        """
        sr = _StartResponse(self)
        result: Any = None
        whole: bytes | None = None
        failed = False
        try:
            result = self.container.application(self.environ, sr)
            if isinstance(result, (list, tuple)):
                whole = b"".join(result)
            else:
                whole = self._stream(result, sr)
        except BaseException as exc:
            failed = True
            self._fail(exc, sr)
        if result is not None:
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except BaseException as exc:
                    if failed:
                        log.exception("close() of the WSGI response iterable raised too")
                    else:
                        failed = True
                        self._fail(exc, sr)
        try:
            if not failed:
                if whole is not None:
                    self._send_whole(sr, whole)
                else:
                    self._finish(sr)
        except BaseException as exc:
            self._fail(exc, sr)
        finally:
            self._worker_finished()

    def _stream(self, result: Any, sr: _StartResponse) -> bytes | None:
        """Iterate ``result``, sending each chunk; return the body instead when the
        first chunk already completes the declared ``Content-Length``.

        That is how Flask/Werkzeug answer every non-streamed response (a generator
        over one encoded body, with ``Content-Length`` set), so it gets the fast
        path a list body gets: one IOLoop callback for headers, body and finish.
        """
        for chunk in result:
            if not isinstance(chunk, bytes):
                raise WSGIAppError(
                    f"WSGI iterable yielded {type(chunk).__name__}, not bytes (PEP 3333)"
                )
            if not chunk:
                continue
            if not sr.headers_sent and _completes_declared_length(sr.headers, len(chunk)):
                return chunk
            if not self.send(sr, chunk):
                return None
        return None

    def _make_plan(self, sr: _StartResponse, known_length: int | None) -> ResponsePlan:
        if sr.code is None:
            raise WSGIAppError("the application did not call start_response()")
        return plan_response(
            self.request.method or "GET",
            self.request.version,
            sr.code,
            sr.reason,
            sr.headers,
            known_length=known_length,
            extra_headers=[("X-Request-ID", self.request_id)],
        )

    def _commit(self, sr: _StartResponse, plan: ResponsePlan) -> bool:
        with self._cond:
            if self._closed or self._committed:
                return False
            self._committed = "worker"
            self._head = plan
        sr.headers_sent = True
        self._plan = plan
        return True

    def send(self, sr: _StartResponse, chunk: bytes) -> bool:
        """Queue one non-empty body chunk (worker); blocks while over the high-water mark.

        :returns: False when iteration should stop: client gone, response taken over by
            the IOLoop (413), body not allowed (HEAD/204/304) or ``Content-Length``
            reached.
        """
        if not sr.headers_sent and not self._commit(sr, self._make_plan(sr, None)):
            return False
        plan = self._plan
        assert plan is not None
        if not plan.body_allowed:
            return False
        stop = False
        if plan.content_length is not None:
            remaining = plan.content_length - self._body_bytes
            if len(chunk) >= remaining:
                chunk = chunk[:remaining]
                stop = True
                if not chunk:
                    return False
        self._body_bytes += len(chunk)
        high_water = self.container.response_buffer_size
        with self._cond:
            if self._closed:
                return False
            self._queue.append(chunk)
            self._unflushed += len(chunk)
            wake = not self._pump_scheduled
            self._pump_scheduled = True
        if wake:
            self.loop.add_callback(self._pump)
        with self._cond:
            while self._unflushed > high_water and not self._closed:
                self._cond.wait()
            return not self._closed and not stop

    def _finish(self, sr: _StartResponse) -> None:
        if not sr.headers_sent and not self._commit(sr, self._make_plan(sr, 0)):
            return
        with self._cond:
            if not self._closed and self._committed == "worker":
                self._finish_requested = True

    def _send_whole(self, sr: _StartResponse, body: bytes) -> None:
        if sr.headers_sent:
            # write() was used before returning a list: stream the rest.
            if body:
                self.send(sr, body)
            self._finish(sr)
            return
        plan = self._make_plan(sr, len(body))
        if plan.content_length is not None and len(body) > plan.content_length:
            body = body[: plan.content_length]
        with self._cond:
            if self._closed or self._committed:
                return
            self._committed = "worker"
            self._worker_done = True
        sr.headers_sent = True
        self.loop.add_callback(self.write_whole, plan, body)

    def _fail(self, exc: BaseException, sr: _StartResponse) -> None:
        if isinstance(exc, (ClientDisconnected, RequestBodyTooLarge)) or self._closed:
            log.info(
                "WSGI request %s %s stopped (id=%s): %r",
                self.request.method,
                self.request.uri,
                self.request_id,
                exc,
            )
        else:
            log.error(
                "error in WSGI application for %s %s (id=%s)",
                self.request.method,
                self.request.uri,
                self.request_id,
                exc_info=exc,
            )
        body = _SIMPLE_BODIES[500]
        with self._cond:
            if self._closed or self._committed == "loop":
                return
            if self._committed == "worker":
                self._abort_requested = True
                self._finish_requested = False
                wake = not self._pump_scheduled
                self._pump_scheduled = True
                if wake:
                    self.loop.add_callback(self._pump)
                return
            self._committed = "worker"
            self._head = plan_response(
                self.request.method or "GET",
                self.request.version,
                500,
                "Internal Server Error",
                simple_response_headers(body),
                extra_headers=[("X-Request-ID", self.request_id)],
            )
            if self._head.body_allowed:
                self._queue.append(body)
            self._finish_requested = True
        sr.headers_sent = True

    def _worker_finished(self) -> None:
        with self._cond:
            if self._worker_done:
                return
            self._worker_done = True
            wake = not self._pump_scheduled
            self._pump_scheduled = True
        if wake:
            self.loop.add_callback(self._pump)
