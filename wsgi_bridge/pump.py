"""Response out: the hand-over from one worker thread to the IOLoop, and the writes.

A :class:`ResponsePump` is shared by exactly two threads:

* the **worker thread** commits a response head (:meth:`~ResponsePump.commit`),
  queues body chunks (:meth:`~ResponsePump.send`), asks for the finish or an abort,
  and says when its job returned (:meth:`~ResponsePump.worker_finished`).  These
  methods are thread-safe; they wake the IOLoop with ``IOLoop.add_callback``;
* the **IOLoop thread** writes to the connection (``write_headers``, ``write``,
  ``finish``), answers small responses itself (:meth:`~ResponsePump.respond_simple`),
  learns about disconnects (:meth:`~ResponsePump.on_close`) and completes the
  exchange exactly once.

Only one ``connection.write`` is ever outstanding (Tornado's ``HTTP1Connection``
tracks a single write future); chunks queued meanwhile are coalesced into the next
write.  When more than ``response_buffer_size`` bytes are unflushed, :meth:`send`
blocks the worker on a ``threading.Condition`` until the socket drains or the
client goes away (backpressure).

A whole body (:meth:`~ResponsePump.send_whole`) takes the fast path: the worker posts
ONE callback that writes headers, body and finish, then completes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Literal

from tornado import httputil
from tornado.concurrent import Future
from tornado.ioloop import IOLoop
from tornado.iostream import StreamClosedError

from .compat import close_after_response
from .errors import ClientDisconnected
from .framing import ResponsePlan, plan_response, simple_response_headers
from .input import StreamingInput
from .types import HeaderList

log = logging.getLogger("wsgi_bridge")

#: Bodies of the small responses the bridge writes itself, by status code.
SIMPLE_BODIES = {
    404: b"Not Found\n",
    413: b"Request Entity Too Large\n",
    500: b"Internal Server Error\n",
    503: b"Service Unavailable\n",
    504: b"Gateway Timeout\n",
}


class ResponsePump:
    """The response of one request, from the worker's ``send`` to the connection.

    :param request: the Tornado request (method, version, uri for logs; never mutated).
    :param request_id: the id sent as ``X-Request-ID``.
    :param response_buffer_size: unflushed bytes before :meth:`send` blocks the worker.
    :param on_complete: called once on the IOLoop when the response is over (written
        or aborted) and no worker job can touch it any more.
    :param draining: returns True while the server drains; every response then
        closes its keep-alive connection.

    Created on the IOLoop thread, which it binds to (``IOLoop.current()``).
    """

    def __init__(
        self,
        request: httputil.HTTPServerRequest,
        request_id: str,
        response_buffer_size: int,
        on_complete: Callable[[], None],
        draining: Callable[[], bool],
    ) -> None:
        self.request = request
        self.connection: Any = request.connection
        self.request_id = request_id
        self.loop = IOLoop.current()
        self._high_water = response_buffer_size
        self._on_complete = on_complete
        self._draining = draining
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
        self.completed = False
        #: True once a worker job owns the end of the response (set at dispatch).
        self.dispatched = False
        #: The streaming upload to fail when the client goes away or the response ends.
        self.upload: StreamingInput | None = None
        #: Status code sent (0: none yet).
        self.status_code = 0
        #: Body bytes handed to the connection.
        self.bytes_sent = 0
        #: True when the response was cut short (client gone, error after the head).
        self.aborted = False
        #: Resolved once the exchange completed.
        self.done: Future[None] = Future()
        #: Headers the mounting handler sets by default (``set_default_headers``); sent
        #: unless the response has a header of the same name.
        self.default_headers: HeaderList | None = None

    @property
    def closed(self) -> bool:
        """True once the client connection is known to be gone (any thread)."""
        return self._closed

    # ------------------------------------------------------------ worker side
    def commit(self, plan: ResponsePlan) -> bool:
        """Claim the response for the worker with this head (worker thread).

        :returns: False when the client is gone or the IOLoop already answered
            (413, 503); the worker must then stop producing.
        """
        with self._cond:
            if self._closed or self._committed:
                return False
            self._committed = "worker"
            self._head = plan
        return True

    def send(self, chunk: bytes) -> bool:
        """Queue one body chunk (worker thread); blocks while over the high-water mark.

        :returns: False when the client went away (stop iterating).
        """
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
            while self._unflushed > self._high_water and not self._closed:
                self._cond.wait()
            return not self._closed

    def request_finish(self) -> None:
        """End the worker's response after what was queued (worker thread)."""
        with self._cond:
            if not self._closed and self._committed == "worker":
                self._finish_requested = True

    def send_whole(self, plan: ResponsePlan, body: bytes) -> None:
        """Fast path (worker thread): commit ``plan`` and post ONE callback for all of it.

        The callback writes headers, ``body`` and finish, then completes; the worker
        job must not touch the response afterwards (it counts as finished).
        """
        with self._cond:
            if self._closed or self._committed:
                return
            self._committed = "worker"
            self._worker_done = True
        self.loop.add_callback(self._write_whole, plan, body)

    def fail(self, error_plan: ResponsePlan, body: bytes) -> bool:
        """The application failed (worker thread): answer ``error_plan`` or abort.

        :param error_plan: the 500 head, used if no head was committed yet.
        :param body: its body.
        :returns: True if the 500 was committed; False if the response was already
            the worker's (the connection is then closed after the bytes queued so far,
            so a truncated body never looks complete) or is not the worker's to answer.
        """
        with self._cond:
            if self._closed or self._committed == "loop":
                return False
            if self._committed == "worker":
                self._abort_requested = True
                self._finish_requested = False
                wake = not self._pump_scheduled
                self._pump_scheduled = True
                if wake:
                    self.loop.add_callback(self._pump)
                return False
            self._committed = "worker"
            self._head = error_plan
            if error_plan.body_allowed:
                self._queue.append(body)
            self._finish_requested = True
        return True

    def worker_finished(self) -> None:
        """The worker job returned (worker thread); the IOLoop completes when written."""
        with self._cond:
            if self._worker_done:
                return
            self._worker_done = True
            wake = not self._pump_scheduled
            self._pump_scheduled = True
        if wake:
            self.loop.add_callback(self._pump)

    # ------------------------------------------------------------ IOLoop side
    def respond_simple(
        self, code: int, reason: str, extra: HeaderList | None = None, close: bool = False
    ) -> bool:
        """Send a small plain-text response from the IOLoop, without the application.

        :param code: 404, 413, 500, 503 or 504 (the body comes from :data:`SIMPLE_BODIES`).
        :param reason: reason phrase.
        :param extra: more headers, e.g. ``[("Retry-After", "1")]``.
        :param close: close the connection after the response.
        :returns: False if the worker had already started the response (nothing sent).
        """
        with self._cond:
            if self._committed or self._closed:
                return False
            self._committed = "loop"
        body = SIMPLE_BODIES.get(code, b"")
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

    def on_close(self) -> None:
        """The client connection closed (IOLoop thread); wakes a blocked worker."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        if not self.completed:
            self.aborted = True
        if self.upload is not None:
            self.upload.feed_error(ClientDisconnected("client disconnected"))
        self._pump()

    def abort_connection(self) -> None:
        """Close the connection now (IOLoop thread), losing unsent output."""
        self.aborted = True
        try:
            self.connection.close()
        finally:
            self.on_close()

    def _write_head(self, plan: ResponsePlan, data: bytes) -> Future[None]:
        headers = httputil.HTTPHeaders()
        if self.default_headers:
            own = {name.lower() for name, _ in plan.headers}
            for name, value in self.default_headers:
                if name.lower() not in own:
                    headers.add(name, value)
        for name, value in plan.headers:
            headers.add(name, value)
        if plan.close_connection or self._draining():
            close_after_response(self.connection)
        self.status_code = plan.code
        start_line = httputil.ResponseStartLine("HTTP/1.1", plan.code, plan.reason)
        future: Future[None] = self.connection.write_headers(
            start_line, headers, chunk=data or None
        )
        return future

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

    def _write_whole(self, plan: ResponsePlan, body: bytes) -> None:
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
        """Move queued output to the connection; one write outstanding at most."""
        if self.completed:
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
        if self.completed:
            return
        self.completed = True
        if self.upload is not None:
            # Release a paused upload; the application is done with it.
            self.upload.feed_error(ClientDisconnected("response already complete"))
        if self.status_code == 0:
            self.aborted = True
        try:
            self._on_complete()
        finally:
            if not self.done.done():
                self.done.set_result(None)
