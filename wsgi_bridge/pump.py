"""Response out: the hand-over from one worker thread to the IOLoop, and the writes.

A :class:`ResponsePump` is shared by exactly two threads:

* the **worker thread** commits a response head (:meth:`~ResponsePump.commit`),
  queues body chunks (:meth:`~ResponsePump.send`), asks for the finish or an abort,
  and says when its job returned (:meth:`~ResponsePump.worker_finished`).  These
  methods are thread-safe; they wake the IOLoop through its :class:`LoopPoster`
  (one ``IOLoop.add_callback`` per batch of posts, from all responses);
* the **IOLoop thread** writes to the connection (``write_headers``, ``write``,
  ``finish``), answers small responses itself (:meth:`~ResponsePump.respond_simple`),
  learns about disconnects (:meth:`~ResponsePump.on_close`) and completes the
  exchange exactly once.

One IOLoop callback writes everything queued since the previous one: large chunks as
they are, small neighbours grouped up to :data:`WRITE_WINDOW` (:func:`group_writes`);
a chunked body is framed here with one copy (:meth:`ResponsePump._write_body`).  A
write the socket took at once counts as flushed at once; otherwise nothing more is
written until the stream's buffer drained.  When more than ``response_buffer_size``
bytes are unflushed, :meth:`send` blocks the worker on a ``threading.Condition``
until the socket drains or the client goes away (backpressure).

A whole body (:meth:`~ResponsePump.send_whole`) takes the fast path: the worker posts
ONE callback that writes headers, body and finish, then completes.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from functools import partial
from typing import Any, Literal

from tornado import httputil
from tornado.concurrent import Future
from tornado.ioloop import IOLoop
from tornado.iostream import StreamClosedError
from tornado.log import app_log

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


#: Most bytes one write of the pump joins from several chunks (see :func:`group_writes`).
#: Above the default ``response_buffer_size`` (1 MiB) plus a chunk, so everything a
#: streaming worker queued before it blocked goes out in one send; the queue itself is
#: bounded by ``response_buffer_size`` + one chunk, so is the join.
WRITE_WINDOW = 2 * 1024 * 1024


def group_writes(chunks: list[bytes], window: int) -> list[list[bytes]]:
    """Group queued ``chunks`` into writes, in order.

    A chunk of ``window`` bytes or more is a write of its own; smaller neighbours
    share a write while their sum stays within ``window``.  So a join never builds
    more than ``window`` bytes out of several chunks, and one send carries many
    small chunks.

    :param chunks: non-empty body chunks, in order.
    :param window: bytes, the most one group of several chunks may hold.
    :returns: the groups; their concatenation is ``chunks``.
    """
    groups: list[list[bytes]] = []
    group: list[bytes] = []
    size = 0
    for chunk in chunks:
        n = len(chunk)
        if group and (size + n > window or n >= window):
            groups.append(group)
            group, size = [], 0
        group.append(chunk)
        size += n
    if group:
        groups.append(group)
    return groups


class LoopPoster:
    """Run callables on one IOLoop, posted from any thread, with one wake-up per batch.

    ``IOLoop.add_callback`` from another thread writes to the loop's self-pipe on
    every call: a system call that releases the GIL, which the posting worker then
    has to win back from the busy IOLoop thread.  Under load many workers finish
    while the loop is busy, so :meth:`post` only appends to a list and wakes the loop
    when the list was empty; the one :meth:`_drain` callback then runs everything
    posted so far, in posting order.  Invariant: a drain is scheduled exactly when
    the list is non-empty.

    :param loop: the IOLoop the callables run on.
    """

    __slots__ = ("__weakref__", "_items", "_lock", "_loop", "wakeups")

    def __init__(self, loop: IOLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._items: list[tuple[Callable[..., None], tuple[Any, ...]]] = []
        #: How many times :meth:`post` woke the IOLoop (``add_callback`` calls).
        self.wakeups = 0

    @property
    def pending(self) -> int:
        """Callables posted and not yet run (any thread)."""
        return len(self._items)

    def post(self, callback: Callable[..., None], *args: Any) -> None:
        """Run ``callback(*args)`` on the IOLoop soon (thread-safe, never blocks)."""
        with self._lock:
            self._items.append((callback, args))
            if len(self._items) > 1:
                return  # the drain already scheduled will run it
            self.wakeups += 1
        self._loop.add_callback(self._drain)

    def _drain(self) -> None:
        with self._lock:
            items, self._items = self._items, []
        for callback, args in items:
            try:
                callback(*args)
            except Exception:
                # As IOLoop.add_callback would: log it and go on with the others.
                app_log.exception("Exception in callback %r", callback)


_posters: weakref.WeakKeyDictionary[IOLoop, LoopPoster] = weakref.WeakKeyDictionary()


def poster_for(loop: IOLoop) -> LoopPoster:
    """The :class:`LoopPoster` of ``loop`` (created on first use; IOLoop thread)."""
    poster = _posters.get(loop)
    if poster is None:
        poster = _posters[loop] = LoopPoster(loop)
    return poster


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
        self._post = poster_for(self.loop).post
        self._high_water = response_buffer_size
        self._on_complete = on_complete
        self._draining = draining
        self._lock = threading.Lock()
        #: Made on the first wait (see :meth:`_wait`): most responses never need it.
        self._waiters: threading.Condition | None = None
        # Shared between threads; guarded by _lock.
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
        self._chunked = False
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
        #: Headers the mounting handler sets by default (``set_default_headers``); sent
        #: unless the response has a header of the same name.
        self.default_headers: HeaderList | None = None
        self._done: Future[None] | None = None

    @property
    def done(self) -> Future[None]:
        """Resolved once the exchange completed (IOLoop thread; made on first use)."""
        if self._done is None:
            self._done = Future()
            if self.completed:
                self._done.set_result(None)
        return self._done

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
        with self._lock:
            if self._closed or self._committed:
                return False
            self._committed = "worker"
            self._head = plan
        return True

    def send(self, chunk: bytes) -> bool:
        """Queue one body chunk (worker thread); blocks while over the high-water mark.

        :returns: False when the client went away (stop iterating).
        """
        with self._lock:
            if self._closed:
                return False
            self._queue.append(chunk)
            self._unflushed += len(chunk)
            if not self._pump_scheduled:
                # Thread-safe and never calls back into us: fine under the lock.
                self._pump_scheduled = True
                self._post(self._pump)
            while self._unflushed > self._high_water and not self._closed:
                self._wait()
            return not self._closed

    def request_finish(self) -> None:
        """End the worker's response after what was queued (worker thread)."""
        with self._lock:
            if not self._closed and self._committed == "worker":
                self._finish_requested = True

    def send_whole(self, plan: ResponsePlan, body: bytes) -> None:
        """Fast path (worker thread): commit ``plan`` and post ONE callback for all of it.

        The callback writes headers, ``body`` and finish, then completes; the worker
        job must not touch the response afterwards (it counts as finished).
        """
        with self._lock:
            if self._closed or self._committed:
                return
            self._committed = "worker"
            self._worker_done = True
        self._post(self._write_whole, plan, body)

    def fail(self, error_plan: ResponsePlan, body: bytes) -> bool:
        """The application failed (worker thread): answer ``error_plan`` or abort.

        :param error_plan: the 500 head, used if no head was committed yet.
        :param body: its body.
        :returns: True if the 500 was committed; False if the response was already
            the worker's (the connection is then closed after the bytes queued so far,
            so a truncated body never looks complete) or is not the worker's to answer.
        """
        with self._lock:
            if self._closed or self._committed == "loop":
                return False
            if self._committed == "worker":
                self._abort_requested = True
                self._finish_requested = False
                wake = not self._pump_scheduled
                self._pump_scheduled = True
                if wake:
                    self._post(self._pump)
                return False
            self._committed = "worker"
            self._head = error_plan
            if error_plan.body_allowed:
                self._queue.append(body)
            self._finish_requested = True
        return True

    def worker_finished(self) -> None:
        """The worker job returned (worker thread); the IOLoop completes when written."""
        with self._lock:
            if self._worker_done:
                return
            self._worker_done = True
            wake = not self._pump_scheduled
            self._pump_scheduled = True
        if wake:
            self._post(self._pump)

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
        with self._lock:
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
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._wake()
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
            # Validated already (headers.py); item assignment skips add()'s regexes.
            if name in headers:
                headers.add(name, value)
            else:
                headers[name] = value
        if plan.close_connection or self._draining():
            close_after_response(self.connection)
        self.status_code = plan.code
        start_line = httputil.ResponseStartLine("HTTP/1.1", plan.code, plan.reason)
        future: Future[None] = self.connection.write_headers(
            start_line, headers, chunk=data or None
        )
        # write_headers adds the header exactly when it chunks the body (public data).
        self._chunked = headers.get("Transfer-Encoding") == "chunked"
        return future

    def _write_body(self, groups: list[list[bytes]]) -> None:
        """Write body chunks after the head, one write per group (IOLoop thread).

        A chunked body is framed here, each chunk with its own size line, in ONE
        ``b"".join`` per group (one copy), handed to the connection's ``IOStream``
        directly: ``HTTP1Connection.write`` frames with two concatenations (two copies)
        and one send per chunk.  Tornado still writes the last chunk in ``finish()``,
        after these bytes (one ordered stream buffer); the connection's response
        observers still see each chunk (``report_body``).  Other bodies go through
        ``HTTP1Connection.write``, which does not copy them; a group of several small
        chunks is joined first.
        """
        if self._chunked:
            stream = self.connection.stream
            report = getattr(self.connection, "report_body", None)  # http1.observe_response
            for group in groups:
                parts: list[bytes] = []
                for chunk in group:
                    parts += (b"%x\r\n" % len(chunk), chunk, b"\r\n")
                    if report is not None:
                        report(chunk)
                stream.write(b"".join(parts))
        else:
            for group in groups:
                self.connection.write(group[0] if len(group) == 1 else b"".join(group))

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
        with self._lock:
            self._closed = True
            self._wake()

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
        """Move queued output to the connection (IOLoop thread, via the poster).

        Writes everything queued (see :func:`group_writes` and :meth:`_write_body`), then,
        if the socket did not take it all, waits for the stream to drain before the
        next write (:meth:`_flush_future`): at most one flush is awaited at a time.
        """
        if self.completed:
            return
        with self._lock:
            self._pump_scheduled = False
            closed = self._closed
            done = self._worker_done
            if closed:
                self._queue.clear()
                self._unflushed = 0
                self._head = None
                self._finish_requested = self._abort_requested = False
                self._wake()
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
        groups = group_writes(queue, WRITE_WINDOW)
        n = 0
        flushed: Future[None] | None = None
        try:
            if plan is not None:
                first = groups.pop(0) if groups else []
                data = first[0] if len(first) == 1 else b"".join(first)
                self._write_head(plan, data)
                n = len(data)
            if groups:
                self._write_body(groups)
                n += sum(len(chunk) for group in groups for chunk in group)
            self.bytes_sent += n
            if finish:
                self.connection.finish()
            flushed = self._flush_future()
        except Exception as exc:
            flushed = None
            self._write_failed(exc)
        if flushed is not None and not self._closed:
            self._writing = True
            flushed.add_done_callback(partial(self._on_written, n))
        elif n:
            with self._lock:
                self._unflushed = max(0, self._unflushed - n)
                self._wake()
        if self._closed:
            self._pump()
        elif not self._writing and (done or self._abort_requested):
            if self._abort_requested:
                self._pump()
            else:
                self._complete()

    def _wait(self) -> None:
        """Wait for :meth:`_wake` (``_lock`` held; worker thread)."""
        if self._waiters is None:
            self._waiters = threading.Condition(self._lock)
        self._waiters.wait()

    def _wake(self) -> None:
        """Wake a worker blocked in :meth:`_wait` (``_lock`` held; any thread)."""
        if self._waiters is not None:
            self._waiters.notify_all()

    def _flush_future(self) -> Future[None] | None:
        """What to wait for before the bytes just written count as flushed.

        ``IOStream.write`` sends at once as much as the socket takes.  When the
        stream's buffer is empty afterwards (the usual case), everything went to the
        kernel and there is nothing to wait for: None, no callback, no extra IOLoop
        iteration.  Otherwise a zero-byte ``stream.write`` gives the future of
        "everything so far is flushed" (the futures of ``HTTP1Connection.write`` do
        not: the first completed write resolves the latest one).
        """
        stream = self.connection.stream
        if stream.closed() or not stream.writing():
            return None
        future: Future[None] = stream.write(b"")
        return future

    def _on_written(self, n: int, _flushed: Future[None] | None = None) -> None:
        with self._lock:
            self._unflushed -= n
            self._wake()
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
            if self._done is not None and not self._done.done():
                self._done.set_result(None)
