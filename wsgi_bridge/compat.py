"""The one place this project touches private attributes of Tornado and concurrent.futures.

Tornado and the standard library have no public way to do a few things a server
needs: close a keep-alive connection after the current response, learn when a
streamed request body is complete, tell whether a ``RequestHandler`` already sent
its headers, or count the live threads of a ``ThreadPoolExecutor``.  Each such use
is a small named function here, so that:

* the rest of the code reads as intent (``close_after_response(connection)``), not
  as a private attribute;
* an upgrade that renames one breaks one module, and the canary tests in
  ``tests/bridge/test_compat.py`` say which attribute moved, loudly.

Every attribute below has been stable since Tornado 4 (2014) and Python 3.2; the
canary tests check them against the installed versions on every run.  Other packages
of the project (the native handlers, the server) import these functions too, instead
of reaching into Tornado themselves.

.. warning:: These functions touch another library's internals and follow its thread
   rules: the ``RequestHandler`` and ``HTTP1Connection`` ones may only be called on
   the IOLoop thread that owns the request.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

from tornado import http1connection, httpserver, httputil, iostream, tcpserver
from tornado.concurrent import Future, future_set_result_unless_cancelled
from tornado.web import RequestHandler

__all__ = [
    "HTTP1_OVERRIDES",
    "accept_pending",
    "body_future",
    "busy_threads",
    "close_after_response",
    "connection_max_body_size",
    "deliver_body",
    "executor_max_workers",
    "headers_written",
    "live_threads",
    "mark_handler_finished",
    "pending_output",
    "release_connection",
    "request_context",
    "request_read_finished",
    "reset_handler_response",
    "response_headers",
    "response_pending",
    "server_connections",
    "unread",
]

#: Private methods of Tornado's HTTP/1 layer that ``wsgi_bridge.http1`` overrides
#: (``(class path, method, the caller that must still call it)``); the canary test
#: checks each is still there and still called by name.
HTTP1_OVERRIDES = (
    ("tornado.http1connection.HTTP1Connection", "_read_chunked_body", "_read_body"),
    ("tornado.http1connection.HTTP1ServerConnection", "_server_request_loop", "start_serving"),
)


# ------------------------------------------------------------ tornado.http1connection
def close_after_response(connection: object) -> bool:
    """Make Tornado close ``connection`` once the current response is finished.

    Sets ``HTTP1Connection._disconnect_on_finish``, the flag Tornado itself sets for
    ``Connection: close`` (RFC 9112 §9.6); there is no public switch.  Call it before
    ``connection.finish()``.

    :param connection: the request's ``HTTPServerRequest.connection`` (an
        ``HTTP1Connection``, or any other ``HTTPConnection``).
    :returns: True if the flag was set; False for a connection that has no such flag
        (an HTTP/2 or test connection), which is left alone.
    """
    if not hasattr(connection, "_disconnect_on_finish"):
        return False
    connection._disconnect_on_finish = True
    return True


def request_read_finished(connection: object) -> bool:
    """True once the server ``connection`` has read the whole request body.

    Reads ``HTTP1Connection._read_finished``; Tornado itself closes the connection
    after a response that ends before it (``HTTP1Connection.finish``).
    """
    return bool(getattr(connection, "_read_finished", True))


def response_pending(connection: object) -> bool:
    """True while the server ``connection`` may still write a response that stays open.

    Reads ``HTTP1Connection._write_finished`` (False until the response is finished)
    and ``_disconnect_on_finish`` (True when the connection closes after it).  False
    for a connection without them.
    """
    return getattr(connection, "_write_finished", True) is False and (
        getattr(connection, "_disconnect_on_finish", True) is False
    )


def read_buffer_size(stream: iostream.BaseIOStream) -> int:
    """Bytes received and buffered by ``stream`` but not yet read by anyone
    (``BaseIOStream._read_buffer_size``)."""
    size: int = getattr(stream, "_read_buffer_size")  # noqa: B009
    return size


def request_start_line(connection: http1connection.HTTP1Connection) -> Any:
    """The parsed request line of a server-side ``HTTP1Connection``, or None before its
    head was read (``HTTP1Connection._request_start_line``)."""
    return getattr(connection, "_request_start_line")  # noqa: B009


def unread(stream: iostream.BaseIOStream, data: bytes) -> None:
    """Put ``data``, just read from ``stream``, back in front of its read buffer.

    Prepends to ``BaseIOStream._read_buffer`` and adds to ``_read_buffer_size``; the
    next read finds the bytes there without the network.  ``wsgi_bridge.http1`` reads
    a request head to measure it and gives it back for Tornado to parse: a head left
    unread in the buffer instead makes Tornado drop and re-add its read listener on
    every request (two ``epoll_ctl`` calls and asyncio's bookkeeping).

    :param stream: a stream with no ``read_into`` in progress (IOLoop thread).
    :param data: bytes this stream's last read returned.
    """
    target: Any = stream
    if data:
        target._read_buffer[:0] = data
        target._read_buffer_size += len(data)


def release_connection(connection: object) -> None:
    """Do what ``HTTP1Connection.close()`` does, except closing the stream.

    Drops the callbacks (``_clear_callbacks()``) and resolves ``_finish_future``, which
    Tornado's read loop awaits after the response.  For a lingering close, which
    closes the stream itself later.
    """
    conn: Any = connection
    conn._clear_callbacks()
    if not conn._finish_future.done():
        future_set_result_unless_cancelled(conn._finish_future, None)


def connection_max_body_size(connection: object) -> int:
    """The body size limit, bytes, of this request (``HTTP1Connection._max_body_size``).

    ``set_max_body_size`` writes it; there is no getter.
    """
    size: int = getattr(connection, "_max_body_size")  # noqa: B009 (private, on purpose)
    return size


def deliver_body(
    connection: object, delegate: httputil.HTTPMessageDelegate, data: bytes
) -> Awaitable[None]:
    """Hand ``data`` to ``delegate`` as Tornado does (``HTTP1Connection._deliver_body``).

    Skips the delegate once the response is finished, logs its exceptions, and awaits
    its flow-control Future.
    """
    deliver: Any = getattr(connection, "_deliver_body")  # noqa: B009 (private, on purpose)
    result: Awaitable[None] = deliver(delegate, data)
    return result


# ------------------------------------------------------------------ tornado.httpserver
def request_context(
    stream: iostream.IOStream,
    address: Any,
    protocol: str | None,
    trusted_downstream: list[str] | None,
) -> Any:
    """The per-connection context ``HTTPServer.handle_stream`` builds (``_HTTPRequestContext``).

    It provides ``remote_ip``, ``protocol``, ``address`` and the ``xheaders`` rewriting
    that ``HTTPServerRequest`` and ``HTTPServer(xheaders=True)`` rely on.
    """
    return httpserver._HTTPRequestContext(stream, address, protocol, trusted_downstream)


def server_connections(server: httpserver.HTTPServer) -> set[Any]:
    """The live connections of ``server`` (``HTTPServer._connections``), which
    ``close_all_connections()`` closes and ``on_close`` removes from."""
    connections: set[Any] = server._connections
    return connections


def accept_pending(server: tcpserver.TCPServer) -> int:
    """Accept the connections waiting in ``server``'s listen queues and serve them.

    Reads ``TCPServer._sockets`` (the listening sockets, non-blocking) and calls
    ``TCPServer._handle_connection`` (what Tornado's accept handler calls per
    connection).  Call it just before ``stop()``: closing a listening socket resets
    the connections the kernel already completed but the server had not accepted
    yet, and a proxy cannot retry a request it already sent (a POST) elsewhere.

    :returns: how many connections were accepted.
    """
    sockets: dict[int, socket.socket] = server._sockets
    accepted = 0
    for sock in list(sockets.values()):
        while True:
            try:
                connection, address = sock.accept()
            except OSError:  # BlockingIOError: the queue is empty
                break
            server._handle_connection(connection, address)
            accepted += 1
    return accepted


# ------------------------------------------------------------------ tornado.httputil
def body_future(request: httputil.HTTPServerRequest) -> Future[None] | None:
    """The Future Tornado resolves when ``request``'s body was read completely.

    Reads ``HTTPServerRequest._body_future``.  It is resolved after the last
    ``data_received`` of a ``@stream_request_body`` handler, and fails or is cancelled
    when the connection closes first.

    :returns: the Future, or None for a request built without a connection (tests).
    """
    future: Future[None] | None = getattr(request, "_body_future", None)
    return future


# ------------------------------------------------------------ tornado.web.RequestHandler
def headers_written(handler: RequestHandler) -> bool:
    """True once ``handler`` has sent its status line and headers (``_headers_written``).

    After that, ``set_header``/``set_cookie`` no longer reach the client.
    """
    return bool(handler._headers_written)


def response_headers(handler: RequestHandler) -> httputil.HTTPHeaders:
    """The response headers ``handler`` has set so far (``RequestHandler._headers``).

    The live object, not a copy: changes go out with the response if the headers
    were not written yet (see :func:`headers_written`).
    """
    headers: httputil.HTTPHeaders = handler._headers
    return headers


def pending_output(handler: RequestHandler) -> list[bytes]:
    """Body chunks ``handler.write()`` buffered and ``flush()`` has not sent yet.

    Reads ``RequestHandler._write_buffer``, the live list (bytes each).
    """
    buffer: list[bytes] = handler._write_buffer
    return buffer


def reset_handler_response(handler: RequestHandler) -> None:
    """Reset ``handler``'s response state to empty, without Tornado's default headers.

    What ``RequestHandler.clear()`` does (``_headers``, ``_write_buffer``,
    ``_status_code``, ``_reason``), minus the ``Server``, ``Content-Type`` and
    formatted ``Date`` headers, which are work thrown away when something else
    writes the response (the bridge).
    """
    handler._headers = httputil.HTTPHeaders()
    handler._write_buffer = []
    handler._status_code = 200
    handler._reason = "OK"


def mark_handler_finished(handler: RequestHandler) -> None:
    """Tell ``handler`` its response is finished (``RequestHandler._finished = True``).

    For a handler whose response is written by someone else on the connection: Tornado
    then never calls ``finish()``, ``write()`` or ``send_error()`` on it after the
    handler method returns or raises.
    """
    handler._finished = True


# ------------------------------------------------------------------ concurrent.futures
def executor_max_workers(executor: Executor) -> int | None:
    """The thread count ``executor`` was created with (``ThreadPoolExecutor._max_workers``).

    :returns: the count in threads, or None for an executor that has none (a
        ``ProcessPoolExecutor`` stores it under the same name; anything else: None).
    """
    workers = getattr(executor, "_max_workers", None)
    return workers if isinstance(workers, int) and workers > 0 else None


def live_threads(executor: ThreadPoolExecutor) -> int:
    """How many of ``executor``'s threads are alive (``ThreadPoolExecutor._threads``).

    After ``executor.shutdown(wait=False)``, an alive thread is one still running a
    work item: idle threads exit as soon as they see the shutdown.  There is no
    public way to know.

    :returns: a count of threads, 0 before the first job was submitted.
    """
    threads: Any = getattr(executor, "_threads", ())
    return sum(1 for thread in list(threads) if thread.is_alive())


def busy_threads(executor: ThreadPoolExecutor) -> int:
    """How many of ``executor``'s threads run (or are about to run) a work item.

    Live threads (:func:`live_threads`) minus the idle ones: each thread that finishes
    a work item releases ``ThreadPoolExecutor._idle_semaphore`` and each ``submit``
    takes one release back, so its counter is the number of idle threads waiting for
    work.  A sample for metrics, exact only when the pool is quiet.

    :returns: a count of threads, 0 before the first job was submitted.
    """
    idle: Any = getattr(executor, "_idle_semaphore", None)
    idle_count = getattr(idle, "_value", 0)
    live = live_threads(executor)
    return max(0, live - (idle_count if isinstance(idle_count, int) else 0))
