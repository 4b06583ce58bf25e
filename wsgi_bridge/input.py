"""``wsgi.input`` objects: a fully buffered body and a bounded streaming pipe.

PEP 3333 "Input and Error Streams": ``read(size)``, ``readline(size)``,
``readlines(hint)`` and ``__iter__``; past the end every read returns ``b""``
(``wsgi.input_terminated`` semantics), so ``read()`` with no size is safe.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator
from typing import Any

from tornado.concurrent import Future
from tornado.ioloop import IOLoop


class BufferedInput(io.BytesIO):
    """``wsgi.input`` for a body that is already entirely in memory (a ``BytesIO``)."""


class StreamingInput:
    """A bounded pipe from the IOLoop (writer) to one worker thread (reader).

    The IOLoop side calls :meth:`feed`, :meth:`feed_eof` and :meth:`feed_error`;
    :meth:`feed` returns a Future when more than ``high_water`` bytes are buffered,
    which Tornado's ``data_received`` flow control awaits before reading more from the
    socket.  The worker side reads, blocking until data, EOF or an error arrives; once
    it has drained the buffer below ``high_water`` it resolves that Future on the
    IOLoop (via ``IOLoop.add_callback``).

    :param loop: the IOLoop that feeds this pipe.
    :param high_water: bytes buffered before the sender is paused (``request_buffer_size``).
    :param on_read: optional callback run in the worker after each read (for tests/metrics).

    .. warning:: only one thread may read.  Errors fed with :meth:`feed_error` are raised
       by every later read once the buffered data is consumed.
    """

    def __init__(
        self, loop: IOLoop, high_water: int, on_read: Callable[[int], None] | None = None
    ) -> None:
        self._loop = loop
        self._high_water = max(1, high_water)
        self._buf = bytearray()
        self._eof = False
        self._error: BaseException | None = None
        self._cond = threading.Condition(threading.Lock())
        self._waiter: Future[None] | None = None
        self._on_read = on_read

    # -- IOLoop side -------------------------------------------------------------
    def feed(self, data: bytes) -> Future[None] | None:
        """Append body bytes; returns a Future to await when the buffer is full."""
        with self._cond:
            if self._eof or self._error is not None:
                return None
            self._buf += data
            self._cond.notify_all()
            if len(self._buf) >= self._high_water:
                if self._waiter is None:
                    self._waiter = Future()
                return self._waiter
        return None

    def feed_eof(self) -> None:
        """Mark the end of the body; later reads return what is left, then ``b""``."""
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def feed_error(self, exc: BaseException) -> None:
        """Make reads raise ``exc`` (after buffered bytes) and release a paused sender."""
        with self._cond:
            if self._error is None and not self._eof:
                self._error = exc
            self._buf.clear()
            self._cond.notify_all()
            waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def buffered(self) -> int:
        """Bytes currently buffered (for tests and metrics)."""
        return len(self._buf)

    # -- worker side -------------------------------------------------------------
    def _wait_for(self, n: int) -> None:
        # Caller holds the lock.  Wait until n bytes (n <= high_water), EOF or error.
        while len(self._buf) < n and not self._eof and self._error is None:
            self._cond.wait()
        if not self._buf and self._error is not None:
            raise self._error

    def _take(self, n: int) -> bytes:
        # Caller holds the lock.
        data = bytes(self._buf[:n])
        del self._buf[:n]
        if self._waiter is not None and len(self._buf) < self._high_water:
            waiter, self._waiter = self._waiter, None
            self._loop.add_callback(_resolve, waiter)
        return data

    def read(self, size: int | None = -1) -> bytes:
        """Read up to ``size`` bytes (all remaining when ``size`` is None or negative).

        Blocks until ``size`` bytes or EOF (a short read only at EOF).  Returns ``b""``
        at EOF.
        :raises ClientDisconnected: the client went away mid-upload.
        :raises RequestBodyTooLarge: the upload outgrew ``max_body_size``.
        """
        if size is None or size < 0:
            parts: list[bytes] = []
            while True:
                chunk = self.read(self._high_water)
                if not chunk:
                    return b"".join(parts)
                parts.append(chunk)
        if size == 0:
            return b""
        out = bytearray()
        with self._cond:
            while len(out) < size:
                self._wait_for(1)
                if not self._buf:
                    break
                out += self._take(min(len(self._buf), size - len(out)))
        data = bytes(out)
        if self._on_read is not None:
            self._on_read(len(data))
        return data

    def read1(self, size: int = -1) -> bytes:
        """Return what is buffered now (at least one byte unless EOF), up to ``size``."""
        with self._cond:
            self._wait_for(1)
            return self._take(len(self._buf) if size is None or size < 0 else size)

    def readline(self, size: int | None = -1) -> bytes:
        """Read one line including ``b"\\n"``, at most ``size`` bytes when given."""
        limit = None if size is None or size < 0 else size
        out = bytearray()
        with self._cond:
            while limit is None or len(out) < limit:
                self._wait_for(1)
                if not self._buf:
                    break
                want = len(self._buf) if limit is None else min(len(self._buf), limit - len(out))
                nl = self._buf.find(b"\n", 0, want)
                if nl != -1:
                    out += self._take(nl + 1)
                    break
                out += self._take(want)
        return bytes(out)

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        """Read lines until EOF, or until about ``hint`` bytes were read."""
        lines: list[bytes] = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                return lines

    def __iter__(self) -> Iterator[bytes]:
        while True:
            line = self.readline()
            if not line:
                return
            yield line

    def close(self) -> None:
        """No-op: the server owns the pipe (PEP 3333 says apps need not close it)."""


def _resolve(future: Future[Any]) -> None:
    if not future.done():
        future.set_result(None)
