"""The HTTP/1.1 edges Tornado's HTTP/1 layer leaves open, closed for the whole server.

:class:`HTTPServer` is ``tornado.httpserver.HTTPServer`` with its connections served by
:class:`HTTP1ServerConnection` / :class:`HTTP1Connection` from this module.  Use it
wherever the service builds a server (``server/serve.py``, the test harness, the
benchmarks); native routes and the WSGI fallback both get these rules, because they
apply before routing:

* **absolute-form request-target** (``GET http://host:port/path?q=1``, RFC 9112
  §3.2.2): rewritten to origin form (``/path?q=1``) before the request is built, and
  ``Host`` replaced by the target's authority, so routing, ``PATH_INFO`` and
  ``QUERY_STRING`` see the path as for any other request;
* **chunk extensions** (``5;name=value``, RFC 9112 §7.1.1) are ignored (chunk-size
  line up to :data:`CHUNK_LINE_LIMIT` bytes);
* **trailer sections** (RFC 9112 §7.1.2) are read and **dropped**, bounded by
  ``max_header_size`` like the header section (over it: the connection is closed);
* **oversized header sections** get ``431 Request Header Fields Too Large`` (RFC 6585
  §5), and a request line that alone exceeds ``max_header_size`` gets ``414 URI Too
  Long`` (RFC 9110 §15.5.15), then a lingering close; Tornado resets the connection
  with no response;
* **draining** (:meth:`HTTPServer.start_draining`, a graceful stop): from then on every
  response says ``Connection: close`` (RFC 9112 §9.6) and its connection closes after
  it, on native routes and the WSGI fallback alike, so a keep-alive client sends its
  next request elsewhere instead of finding the connection closed under it;
* **answering before the request body was read**: the response says ``Connection:
  close`` (RFC 9112 §9.6) and the connection closes gently (lingering close, as
  Apache and nginx do): the write side is shut down after the response, then what the
  client still sends is read and discarded for up to :data:`LINGER_SECONDS` seconds or
  :data:`LINGER_MAX_BYTES` bytes, then the socket is closed.  Without it the client's
  unread bytes make the kernel send a TCP reset, which can destroy the response
  before the client read it.

Tornado's private pieces this needs go through :mod:`wsgi_bridge.compat`.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import re
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from tornado import gen, httputil, iostream
from tornado.concurrent import Future
from tornado.http1connection import _CHUNK_YIELD_COST, _YIELD_THRESHOLD, parse_hex_int
from tornado.http1connection import HTTP1Connection as _TornadoHTTP1Connection
from tornado.http1connection import HTTP1ServerConnection as _TornadoHTTP1ServerConnection
from tornado.httpserver import HTTPServer as _TornadoHTTPServer
from tornado.ioloop import IOLoop
from tornado.log import gen_log

from . import compat
from .forwarded import TrustedForwarding
from .proxy import TrustedProxies

__all__ = [
    "CHUNK_LINE_LIMIT",
    "LINGER_MAX_BYTES",
    "LINGER_SECONDS",
    "HTTP1Connection",
    "HTTP1ServerConnection",
    "HTTPServer",
    "ResponseObserver",
    "keep_nodelay",
    "linger_close",
    "observe_response",
    "split_absolute_form",
]

#: Seconds a lingering close keeps reading (and discarding) before closing the socket.
LINGER_SECONDS = 2.0
#: Bytes a lingering close discards at most before closing the socket.
LINGER_MAX_BYTES = 4 * 1024 * 1024
#: Bytes allowed for one chunk-size line, extensions and CRLF included.
CHUNK_LINE_LIMIT = 4096
#: Seconds between two looks at the connections ``HTTPServer.close_connections`` waits for.
CLOSE_POLL_INTERVAL = 0.01

#: Reason phrases of the answers to an oversized head (RFC 9110 §15.5.15, RFC 6585 §5).
_REFUSAL_REASONS = {414: "URI Too Long", 431: "Request Header Fields Too Large"}

_ABSOLUTE_FORM = re.compile(r"([hH][tT][tT][pP][sS]?)://([^/?#]*)([^#]*)")


def split_absolute_form(target: str) -> tuple[str, str] | None:
    """Split an absolute-form request-target into ``(authority, origin_form)``.

    RFC 9112 §3.2.2: ``http://example.com:8080/path?q=1`` gives
    ``("example.com:8080", "/path?q=1")``; an empty path becomes ``/``
    (``http://h?q`` gives ``("h", "/?q")``).  Userinfo (``user@``) is dropped from the
    authority, as RFC 9110 §4.2.4 forbids it in ``http`` URIs.

    :param target: the request-target as received (latin-1 ``str``).
    :returns: None when ``target`` is not an ``http``/``https`` absolute-form target
        (origin form ``/...``, asterisk form ``*``, authority form of ``CONNECT``).
    """
    if target.startswith("/"):
        return None
    match = _ABSOLUTE_FORM.fullmatch(target)
    if match is None:
        return None
    authority = match.group(2).rpartition("@")[2]
    rest = match.group(3)
    if not rest.startswith("/"):
        rest = "/" + rest
    return authority, rest


class _OriginForm(httputil.HTTPMessageDelegate):
    """Delegate wrapper: absolute-form targets reach the application in origin form."""

    __slots__ = ("connection", "delegate")

    def __init__(
        self, delegate: httputil.HTTPMessageDelegate, connection: HTTP1Connection | None = None
    ) -> None:
        self.delegate = delegate
        self.connection = connection

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        if isinstance(start_line, httputil.RequestStartLine):
            split = split_absolute_form(start_line.path)
            if split is not None:
                authority, origin = split
                start_line = start_line._replace(path=origin)
                headers["Host"] = authority  # RFC 9112 §3.2.2: the target's host wins
        return self.delegate.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        return self.delegate.data_received(chunk)

    def finish(self) -> None:
        self.delegate.finish()
        if self.connection is not None:
            # On the next iteration: Tornado registers the connection's close callback
            # right after this returns, and a read that finds EOF at once must run it.
            IOLoop.current().add_callback(self.connection.read_ahead)

    def on_connection_close(self) -> None:
        self.delegate.on_connection_close()


@functools.lru_cache(maxsize=8)
def _header_probe(limit: int) -> bytes:
    """The regex that reads a header section of up to ``limit`` bytes, or ``limit + 1``.

    The first alternative consumes the head up to and including the blank line that
    ends it, when that fits in ``limit`` bytes (the same bytes Tornado's own
    ``\\r?\\n\\r?\\n`` read takes); :meth:`HTTP1Connection.read_response` puts
    them back (:func:`~wsgi_bridge.compat.unread`) for Tornado to parse.  Consuming
    rather than looking ahead leaves the stream's buffer empty when the read
    completes, so Tornado keeps its read listener registered between requests.
    Otherwise the second alternative consumes ``limit + 1`` bytes, which are lost:
    the request is refused.
    """
    return rb"\A(?:[\s\S]{0,%d}?\r?\n\r?\n|[\s\S]{%d})" % (max(limit - 4, 0), limit + 1)


def _bytes_waiting(sock: socket.socket | None) -> bool:
    """True if the kernel holds received bytes for ``sock`` (peeked, not read).

    End of stream (the client closed) and errors count as no bytes: nothing to serve.
    """
    if sock is None:
        return False
    try:
        return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return False


def _retrieve_error(future: Future[bytes]) -> None:
    """Mark a read-ahead's error as seen: a connection closing with it pending is normal."""
    if not future.cancelled():
        future.exception()


async def _discard_until_closed(stream: iostream.IOStream, max_bytes: int) -> None:
    """Read and drop what the peer sends until EOF, ``max_bytes``, or the stream closes."""
    discarded = 0
    try:
        while discarded < max_bytes and not stream.closed():
            discarded += len(await stream.read_bytes(65536, partial=True))
    except iostream.StreamClosedError:
        pass
    finally:
        stream.close()


def _shut_down_writes(stream: iostream.IOStream, seconds: float) -> bool:
    """Half-close ``stream`` (send FIN after the written bytes) and arm its deadline.

    :returns: False if the socket is already gone (then ``stream`` is closed).
    """
    sock = stream.socket
    if sock is None or stream.closed():
        stream.close()
        return False
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        stream.close()
        return False
    stream.io_loop.call_later(seconds, stream.close)
    return True


async def linger_close(
    stream: iostream.IOStream,
    seconds: float = LINGER_SECONDS,
    max_bytes: int = LINGER_MAX_BYTES,
) -> None:
    """Close ``stream`` gently: shut down writes, discard input for a while, then close.

    What Apache (``lingering_close``) and nginx (``lingering_close``) do when they
    close a connection whose client may still be sending: closing with unread input
    makes the kernel send a TCP reset, and a reset can destroy the response in the
    client's receive buffer before the client read it.  Call it after the response
    was handed to the socket (the stream's write buffer is empty).

    :param stream: the connection's stream; no read may be pending on it.
    :param seconds: at most this long (seconds) before the socket is closed.
    :param max_bytes: at most this many bytes are read and discarded.
    """
    if _shut_down_writes(stream, seconds):
        await _discard_until_closed(stream, max_bytes)


class ResponseObserver(Protocol):
    """Sees one response as it is written to the client (:func:`observe_response`).

    Called on the IOLoop thread, in order: :meth:`on_headers` once, :meth:`on_data`
    per body chunk, :meth:`on_finish` once when the response ended normally (never
    when the connection closed before).  Observers must be quick and must not raise:
    an exception propagates into the response's writer.
    """

    def on_headers(
        self, start_line: httputil.ResponseStartLine, headers: httputil.HTTPHeaders
    ) -> None:
        """The status line and header section, before they are written; headers may be added."""
        ...

    def on_data(self, chunk: bytes) -> None:
        """One chunk of the body as written (before any transfer coding)."""
        ...

    def on_finish(self) -> None:
        """The response was written completely."""
        ...


def observe_response(request: httputil.HTTPServerRequest, observer: ResponseObserver) -> bool:
    """Have ``observer`` see the response to ``request``, whichever side writes it.

    Native handlers and the WSGI fallback both write through the request's
    connection, so one observer sees either.  Used by the service to add a header
    to a response it did not write (a sticky canary cookie) and to capture what
    the client got (a shadow comparison).

    :param request: a request served by :class:`HTTPServer` (IOLoop thread), before
        its response headers are written.
    :param observer: see :class:`ResponseObserver`.
    :returns: ``False`` when the request's connection is not this module's (a plain
        Tornado ``HTTPServer``, a test double) and nothing will be observed.
    """
    connection = request.connection
    if not isinstance(connection, HTTP1Connection) or connection.is_client:
        return False
    if connection._observers is None:
        connection._observers = []
    connection._observers.append(observer)
    return True


class HTTP1Connection(_TornadoHTTP1Connection):
    """Tornado's ``HTTP1Connection`` with the edges of this module's docstring.

    Server side only (``is_client=False``); as a client it behaves as Tornado's.
    Thread rules as Tornado's: IOLoop thread only.
    """

    def __init__(
        self,
        stream: iostream.IOStream,
        is_client: bool,
        params: Any = None,
        context: object | None = None,
        *,
        head_timeout: float | None = None,
        next_head: Awaitable[bytes] | None = None,
        server: HTTPServer | None = None,
    ) -> None:
        """Arguments as ``tornado.http1connection.HTTP1Connection``, plus:

        :param head_timeout: seconds to wait for a request head; default
            ``params.header_timeout``.  :class:`HTTP1ServerConnection` passes the
            server's here and ``header_timeout=None`` in ``params``, so the wait is
            timed once per request (by the size check), not twice.
        :param next_head: the previous connection's :meth:`read_ahead` read of this
            request's head, if any.
        :param server: the server this connection belongs to; while it is draining
            (:attr:`HTTPServer.draining`), each response closes the connection.
        """
        super().__init__(stream, is_client, params, context)
        self._server = server
        self._head_timeout = (
            head_timeout if head_timeout is not None else self.params.header_timeout
        )
        self._linger = False
        self._lingering = False
        #: Who sees the response (:func:`observe_response`); ``None`` for none (hot path).
        self._observers: list[ResponseObserver] | None = None
        #: The pending read of this request's head (the previous request's
        #: :meth:`read_ahead`), then the read ahead of the next one.
        self._head_read: Awaitable[bytes] | None = next_head
        self.next_head: Awaitable[bytes] | None = None

    async def read_response(self, delegate: httputil.HTTPMessageDelegate) -> bool:
        """Read one request (server side), refusing oversized heads with 431/414.

        :returns: True if the connection may serve another request.
        :raises tornado.iostream.StreamClosedError: the client went away.
        """
        if self.is_client:
            return await super().read_response(delegate)
        status = await self._check_head_size()
        if status is None:
            return False
        if status:
            await self._refuse_head(status)
            return False
        keep_alive = await super().read_response(_OriginForm(delegate, self))
        if self._lingering:
            await _discard_until_closed(self.stream, LINGER_MAX_BYTES)
            return False
        return keep_alive

    async def _check_head_size(self) -> int | None:
        """Wait for the head; 0 if it fits, 431 or 414 if not, None after a timeout."""
        limit = self.params.max_header_size
        probe: Awaitable[bytes] | None = self._head_read
        if probe is None:
            probe = self._head_read = self.stream.read_until_regex(_header_probe(limit))
        timeout = self._head_timeout
        try:
            if timeout is None or (isinstance(probe, Future) and probe.done()):
                data = await probe
            else:
                try:
                    data = await gen.with_timeout(
                        self.stream.io_loop.time() + timeout,
                        probe,
                        quiet_exceptions=iostream.StreamClosedError,
                    )
                except TimeoutError:
                    self.close()
                    return None
        finally:
            # From here on the head's bytes are in the stream again (or refused):
            # awaiting_request() sees them there, not in this read.
            self._head_read = None
        if len(data) <= limit:
            compat.unread(self.stream, data)  # Tornado reads and parses it next
            return 0
        return 431 if b"\n" in data else 414

    def awaiting_request(self) -> bool:
        """True while no byte of a request has arrived on this connection (IOLoop thread).

        False as soon as a request is under way: its head was parsed, a read of it
        has completed, or bytes of it wait in the stream's buffer or in the
        kernel's receive queue (peeked without reading).  A connection for which
        this is True can be closed without cutting a request short: the basis of
        :meth:`HTTPServer.close_connections`.  A TLS stream's kernel bytes may
        be a record without a request; they count as one (the safe side).
        """
        if compat.request_start_line(self) is not None:
            return False
        head_read = self._head_read
        if isinstance(head_read, Future) and head_read.done():
            return False
        stream = self.stream
        if stream is None or stream.closed():
            return True
        if compat.read_buffer_size(stream):
            return False
        return not _bytes_waiting(stream.socket)

    def read_ahead(self) -> None:
        """Start reading the next request's head while this response is in progress.

        Called once the request was read (IOLoop thread).  Without a pending read,
        the next request's bytes arrive while nothing reads: Tornado buffers them and
        drops its read listener, then re-adds it when the next response waits for
        the application (an epoll unregister + register per keep-alive request under
        load).  With the head read pending, the listener stays.  The read is the same
        size check as :meth:`_check_head_size`'s, which the next request awaits (its
        head timeout starts then).  Not for a response that already finished (the
        request loop reads next at once), one that closes the connection, or one
        that started before the body was read (lingering close).
        """
        stream = self.stream
        if (
            self.is_client
            or self._linger
            or self.next_head is not None
            or stream is None
            or stream.closed()
            or stream.reading()
            or not compat.response_pending(self)
        ):
            return
        future = stream.read_until_regex(_header_probe(self.params.max_header_size))
        if isinstance(future, Future):
            future.add_done_callback(_retrieve_error)
        self.next_head = future

    async def _refuse_head(self, status: int) -> None:
        reason = _REFUSAL_REASONS[status]
        body = f"{status} {reason}\n".encode()
        head = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode("latin-1")
        gen_log.info("Request head over max_header_size from %s: %d", self.context, status)
        try:
            await self.stream.write(head + body)
        except iostream.StreamClosedError:
            return
        await linger_close(self.stream)

    def write_headers(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
        chunk: bytes | None = None,
    ) -> Future[None]:
        """As Tornado's, plus: a response that starts before the request body was read
        says ``Connection: close`` and ends with a lingering close (RFC 9112 §9.6), and
        so does every response while the server drains (not a ``101`` upgrade)."""
        if not self.is_client:
            if not compat.request_read_finished(self):
                compat.close_after_response(self)
                self._linger = True
            elif (
                self._server is not None
                and self._server.draining
                and isinstance(start_line, httputil.ResponseStartLine)
                and start_line.code != 101
            ):
                # Tornado writes "Connection: close" itself for an HTTP/1.1 request.
                compat.close_after_response(self)
            observers = self._observers
            if observers is not None and isinstance(start_line, httputil.ResponseStartLine):
                for observer in observers:
                    observer.on_headers(start_line, headers)
                    if chunk:
                        observer.on_data(chunk)
        return super().write_headers(start_line, headers, chunk)

    def report_body(self, chunk: bytes) -> None:
        """Show ``chunk`` to the :func:`observe_response` observers: for a writer that
        frames the body itself and writes to ``self.stream`` directly (the bridge's pump)."""
        if self._observers is not None and chunk:
            for observer in self._observers:
                observer.on_data(chunk)

    def write(self, chunk: bytes) -> Future[None]:
        """As Tornado's; :func:`observe_response` observers see ``chunk`` first."""
        if self._observers is not None and chunk:
            for observer in self._observers:
                observer.on_data(chunk)
        return super().write(chunk)

    def finish(self) -> None:
        """As Tornado's; then :func:`observe_response` observers learn the response ended."""
        super().finish()
        observers, self._observers = self._observers, None
        if observers is not None:
            for observer in observers:
                observer.on_finish()

    def close(self) -> None:
        """Close the connection; with unread request bytes, close gently (lingering)."""
        stream = self.stream
        if self._linger and not self._lingering and stream is not None and not stream.closed():
            self._lingering = True
            _shut_down_writes(stream, LINGER_SECONDS)
            # The rest of the body is still read (and dropped) by Tornado's read loop;
            # read_response then discards the rest and closes the stream.
            compat.release_connection(self)
            return
        super().close()

    async def _read_chunked_body(self, delegate: httputil.HTTPMessageDelegate) -> None:
        """Tornado's chunked-body reader, with chunk extensions and trailers allowed.

        RFC 9112 §7.1: ``chunk-size [ chunk-ext ] CRLF``; the extensions are ignored.
        After the last chunk, the trailer section (RFC 9112 §7.1.2) is read and dropped;
        it may take ``max_header_size`` bytes.

        :raises tornado.httputil.HTTPInputError: malformed framing (Tornado answers 400).
        """
        stream = self.stream
        chunk_size = self.params.chunk_size
        max_body_size = compat.connection_max_body_size(self)
        total_size = 0
        # Small chunks are coalesced, and pending data is delivered whenever a read
        # would wait for the network (as Tornado does).
        pending = bytearray()
        work = 0

        async def deliver(data: bytes) -> None:
            await compat.deliver_body(self, delegate, data)

        async def flush_and_read(future: Awaitable[bytes]) -> bytes:
            data = bytes(pending)
            pending.clear()
            await deliver(data)
            return await future

        def read(future: Awaitable[bytes]) -> Awaitable[bytes]:
            if pending and not (isinstance(future, asyncio.Future) and future.done()):
                return flush_and_read(future)
            return future

        while True:
            work += _CHUNK_YIELD_COST
            if work >= _YIELD_THRESHOLD:
                work = 0
                await asyncio.sleep(0)
            line = await read(stream.read_until(b"\r\n", max_bytes=CHUNK_LINE_LIMIT))
            size_text = line[:-2].split(b";", 1)[0].rstrip(b" \t")
            try:
                chunk_len = parse_hex_int(size_text.decode("latin-1"))
            except ValueError:
                raise httputil.HTTPInputError("invalid chunk size") from None
            if chunk_len == 0:
                await self._read_trailer_section(read)
                if pending:
                    await deliver(bytes(pending))
                return
            total_size += chunk_len
            if total_size > max_body_size:
                raise httputil.HTTPInputError("chunked body too large")
            to_read = chunk_len
            while to_read:
                chunk = await read(stream.read_bytes(min(to_read, chunk_size), partial=True))
                to_read -= len(chunk)
                if not pending and len(chunk) == chunk_size:
                    await deliver(chunk)
                else:
                    pending += chunk
                    if len(pending) >= chunk_size:
                        data = bytes(pending[:chunk_size])
                        del pending[:chunk_size]
                        await deliver(data)
                work += len(chunk)
                if work >= _YIELD_THRESHOLD:
                    work = 0
                    await asyncio.sleep(0)
            if await read(stream.read_bytes(2)) != b"\r\n":
                raise httputil.HTTPInputError("improperly terminated chunk")

    async def _read_trailer_section(
        self, read: Callable[[Awaitable[bytes]], Awaitable[bytes]]
    ) -> None:
        """Read the trailer fields up to the blank line and drop them (RFC 9112 §7.1.2)."""
        budget = self.params.max_header_size
        while True:
            line = await read(self.stream.read_until(b"\r\n", max_bytes=max(budget, 2)))
            if line == b"\r\n":
                return
            budget -= len(line)
            if budget < 2:
                raise httputil.HTTPInputError("trailer section too large")
            if b":" not in line:
                raise httputil.HTTPInputError("malformed trailer field")


class HTTP1ServerConnection(_TornadoHTTP1ServerConnection):
    """Tornado's ``HTTP1ServerConnection`` serving each request with :class:`HTTP1Connection`."""

    #: The request connection being served, or awaiting the next request (IOLoop thread).
    current: HTTP1Connection | None = None

    def idle(self) -> bool:
        """True if closing now cuts no request short (:meth:`HTTP1Connection.awaiting_request`)."""
        current = self.current
        return current is None or current.awaiting_request()

    async def _server_request_loop(self, delegate: httputil.HTTPServerConnectionDelegate) -> None:
        # Tornado's loop, with our HTTP1Connection (Tornado names its class inline).
        # The head's timeout is applied by our size check, which waits for the head;
        # Tornado's own read then finds it complete, so it needs no second timer.
        params = copy.copy(self.params)
        params.header_timeout = None
        server = delegate if isinstance(delegate, HTTPServer) else None
        next_head: Awaitable[bytes] | None = None
        try:
            while True:
                conn = self.current = HTTP1Connection(
                    self.stream,
                    False,
                    params,
                    self.context,
                    head_timeout=self.params.header_timeout,
                    next_head=next_head,
                    server=server,
                )
                request_delegate = delegate.start_request(self, conn)
                try:
                    keep_alive = await conn.read_response(request_delegate)
                except (
                    iostream.StreamClosedError,
                    iostream.UnsatisfiableReadError,
                    asyncio.CancelledError,
                ):
                    return
                except Exception:
                    gen_log.error("Uncaught exception", exc_info=True)
                    conn.close()
                    return
                if not keep_alive:
                    return
                next_head = conn.next_head
                await asyncio.sleep(0)
        finally:
            delegate.on_close(self)


def _nodelay_kept(value: bool) -> None:
    """``IOStream.set_nodelay`` of a connection whose ``TCP_NODELAY`` stays on."""


def keep_nodelay(stream: iostream.IOStream) -> None:
    """Turn ``TCP_NODELAY`` on once for the connection's life (IOLoop thread).

    Tornado's ``HTTP1Connection.finish`` turns it on to flush the last packet of each
    response and off again after it: two ``setsockopt`` system calls per response.
    With it on for good, every response leaves at once (as with nginx's default
    ``tcp_nodelay on``) and the per-response toggling becomes a no-op.  The stream
    already gathers each response into few large writes, so Nagle's algorithm
    would have nothing to merge.

    :param stream: a new server connection's stream (TCP or not; the flag applies to
        TCP sockets only, as ``IOStream.set_nodelay`` decides).
    """
    stream.set_nodelay(True)
    # An instance attribute: this stream only, Tornado's class left alone.
    setattr(stream, "set_nodelay", _nodelay_kept)  # noqa: B010


class HTTPServer(_TornadoHTTPServer):
    """``tornado.httpserver.HTTPServer`` whose connections follow this module's rules.

    Same constructor and methods as Tornado's (``max_header_size`` in bytes,
    ``idle_connection_timeout`` and ``body_timeout`` in seconds, ...), plus
    ``trusted_proxies``.  Use it for every server that serves the bridge::

        server = HTTPServer(application, max_body_size=limit, trusted_proxies=["10.0.0.0/8"])
        server.add_sockets(sockets)

    * ``idle_connection_timeout`` (seconds): how long a keep-alive connection may wait
      for the next request, and a request head may take to arrive *in all* (measured
      from when the server starts waiting for it, so a client trickling a byte at a
      time is dropped too); default 3600, as Tornado's.
    * ``body_timeout`` (seconds): how long the request body may take, in all; then the
      connection is closed.  Default none, as Tornado's.
    * ``trusted_proxies``: IP addresses or CIDRs (a list, or one comma-separated
      string) whose ``X-Forwarded-For``/``-Proto``/``-Host`` are applied to
      ``request.remote_ip``, ``request.protocol`` and ``Host`` before routing
      (:class:`~wsgi_bridge.forwarded.TrustedForwarding`); default none.  Never use
      Tornado's ``xheaders=True`` with it: that trusts every peer.

    For a graceful stop, call :meth:`start_draining` first (responses close their
    connections from then on), then ``stop()`` and :meth:`close_connections`.

    :raises ValueError: a ``trusted_proxies`` entry is not an address or network.
    """

    def initialize(
        self, *args: Any, trusted_proxies: Iterable[str] | str = (), **kwargs: Any
    ) -> None:
        """Tornado's ``initialize`` (the constructor's arguments), plus ``trusted_proxies``."""
        super().initialize(*args, **kwargs)
        self.trusted_proxies = TrustedProxies(trusted_proxies)

    def start_request(
        self, server_conn: object, request_conn: httputil.HTTPConnection
    ) -> httputil.HTTPMessageDelegate:
        """The request's delegate, wrapped to apply trusted ``X-Forwarded-*`` (IOLoop thread)."""
        delegate = super().start_request(server_conn, request_conn)
        if self.trusted_proxies:
            delegate = TrustedForwarding(delegate, request_conn, self.trusted_proxies)
        return delegate

    #: True once :meth:`start_draining` was called (IOLoop thread).
    draining: bool = False

    def start_draining(self) -> None:
        """Make every response from now on say ``Connection: close`` and close its
        connection (IOLoop thread).  The listener still accepts: close it with
        ``stop()``.  Idempotent."""
        self.draining = True

    def stop(self) -> None:
        """Stop listening, as Tornado's, but first accept and serve the connections
        already waiting in the listen queue (IOLoop thread).

        Closing a listening socket makes the kernel reset the connections it had
        completed and queued for ``accept``: their clients (a reverse proxy) may have
        sent a request already, which cannot be retried elsewhere when it is not
        idempotent.  Accepted here, they are served like any other (with ``Connection:
        close`` while draining) and finish with the requests in flight.
        """
        compat.accept_pending(self)  # after a first stop(), the sockets are closed: none
        super().stop()

    async def close_connections(self, timeout: float) -> int:
        """Close every connection: idle ones now, the others once their request is served.

        Tornado's ``close_all_connections()`` (still there, unchanged) closes each
        connection at once, which cuts short a request whose bytes had arrived but
        that no handler had started yet (accepted during :meth:`stop`, or sent on a
        kept-alive connection just before): its client (a reverse proxy with a
        POST) gets no answer and cannot safely retry.
        Here a connection is closed only while no byte of a request has arrived
        (:meth:`HTTP1ServerConnection.idle`, checked every
        :data:`CLOSE_POLL_INTERVAL` seconds); one with a request under way is
        closed after its response (which says ``Connection: close`` while
        draining: call :meth:`start_draining` first).  IOLoop thread.

        :param timeout: seconds to wait for requests under way; then every
            connection left is closed as Tornado's ``close_all_connections()`` would.
        :returns: how many connections were still serving a request at the timeout
            and were closed anyway (0 when every request finished).
        """
        connections = compat.server_connections(self)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while connections and loop.time() < deadline:
            idle = [c for c in connections if not isinstance(c, HTTP1ServerConnection) or c.idle()]
            if idle:
                await asyncio.gather(*(c.close() for c in idle))
            if connections:
                await asyncio.sleep(CLOSE_POLL_INTERVAL)
        cut_short = len(connections)
        await super().close_all_connections()  # Tornado's: whatever is left, at once
        return cut_short

    def handle_stream(self, stream: iostream.IOStream, address: tuple[Any, ...]) -> None:
        """Serve a new connection with :class:`HTTP1ServerConnection` (IOLoop thread).

        ``TCP_NODELAY`` is set once here, for the connection (:func:`keep_nodelay`).
        """
        keep_nodelay(stream)
        context = compat.request_context(stream, address, self.protocol, self.trusted_downstream)
        conn = HTTP1ServerConnection(stream, self.conn_params, context)
        compat.server_connections(self).add(conn)
        conn.start_serving(self)
