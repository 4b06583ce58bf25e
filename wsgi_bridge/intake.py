"""Request body in: buffering, the streaming ``wsgi.input`` feed, and 413.

A :class:`RequestIntake` runs on the IOLoop thread only.  It takes the upload from
``@stream_request_body``'s ``data_received`` and decides when the application starts:

* a body of up to ``request_buffer_size`` bytes is read completely first, so no
  worker thread waits on a slow client for the common small form or JSON post; the
  application then reads a :class:`~wsgi_bridge.input.BufferedInput`;
* a larger (or chunked) body starts the application as soon as the buffer is full;
  it then reads through a bounded :class:`~wsgi_bridge.input.StreamingInput`, whose
  Future pauses Tornado's reading while the pipe is full (flow control), so memory
  per upload is O(``request_buffer_size``);
* a body outgrowing ``max_body_size`` is stopped: 413 if no response byte was sent,
  otherwise the connection is closed; the application's next read raises
  :class:`~wsgi_bridge.errors.RequestBodyTooLarge`.
"""

from __future__ import annotations

from collections.abc import Callable

from tornado.concurrent import Future

from .errors import RequestBodyTooLarge
from .input import BufferedInput, StreamingInput
from .pump import ResponsePump


class RequestIntake:
    """The upload of one request, from Tornado to the application's ``wsgi.input``.

    :param pump: the request's response (its state says whether the exchange is over,
        and it answers 413).
    :param max_body_size: largest body accepted, in bytes.
    :param request_buffer_size: bytes buffered before the application is started, and
        the size of the streaming pipe after that.
    :param start: starts the application with its ``wsgi.input``
        (:class:`~wsgi_bridge.input.BufferedInput` or
        :class:`~wsgi_bridge.input.StreamingInput`); called at most once that matters
        (later calls are ignored by the caller).
    """

    __slots__ = (
        "_max_body_size",
        "_pending",
        "_pump",
        "_received",
        "_rejected",
        "_request_buffer_size",
        "_start",
        "_stream",
    )

    def __init__(
        self,
        pump: ResponsePump,
        max_body_size: int,
        request_buffer_size: int,
        start: Callable[[BufferedInput | StreamingInput], None],
    ) -> None:
        self._pump = pump
        self._max_body_size = max_body_size
        self._request_buffer_size = request_buffer_size
        self._start = start
        self._pending: bytearray | None = bytearray()
        self._stream: StreamingInput | None = None
        self._received = 0
        self._rejected = False

    def data_received(self, chunk: bytes) -> Future[None] | None:
        """Take one piece of the request body from Tornado (IOLoop thread).

        :param chunk: the bytes Tornado read (de-chunked).
        :returns: a Future Tornado awaits before reading more (the pipe is full), or
            None to go on reading.
        """
        pump = self._pump
        if self._rejected or pump.completed:
            return None
        self._received += len(chunk)
        if self._received > self._max_body_size:
            self.reject_too_large()
            return None
        if self._stream is not None:
            return self._stream.feed(chunk)
        pending = self._pending
        if pending is None:
            return None
        pending += chunk
        if len(pending) <= self._request_buffer_size:
            return None
        stream = StreamingInput(pump.loop, self._request_buffer_size)
        self._pending = None
        self._stream = pump.upload = stream
        waiter = stream.feed(bytes(pending))
        self._start(stream)
        return waiter

    def body_complete(self) -> None:
        """The whole request body arrived (IOLoop thread): end the pipe, or start."""
        if self._rejected or self._pump.completed:
            return
        if self._stream is not None:
            self._stream.feed_eof()
        elif not self._pump.dispatched:
            pending = self._pending
            self._pending = None
            self._start(BufferedInput(bytes(pending or b"")))

    def reject_too_large(self) -> None:
        """Stop an upload that outgrew ``max_body_size`` (IOLoop thread).

        413 when no response byte was sent yet; otherwise the connection is closed.
        The application's next ``wsgi.input`` read raises
        :class:`~wsgi_bridge.errors.RequestBodyTooLarge`.
        """
        self._rejected = True
        self._pending = None
        if self._stream is not None:
            self._stream.feed_error(RequestBodyTooLarge("request body exceeds max_body_size"))
        if not self._pump.respond_simple(413, "Request Entity Too Large"):
            self._pump.abort_connection()
