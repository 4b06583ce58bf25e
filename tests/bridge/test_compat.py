"""Canaries for ``wsgi_bridge.compat``: the private attributes it reads still mean the same.

Each test checks one attribute on a real object (a live ``HTTP1Connection``, a
``RequestHandler`` serving a real request, a ``ThreadPoolExecutor``) of the installed
Tornado and Python.  When an upgrade renames or changes one, the failure names the
attribute and the compat function to fix, instead of some bridge test hanging.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import inspect
import socket
import threading
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
import tornado
import tornado.web
from tornado import httputil
from tornado.concurrent import Future
from tornado.http1connection import HTTP1Connection
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.iostream import IOStream
from tornado.netutil import bind_sockets

from wsgi_bridge import compat
from wsgi_bridge.testing import wait_for


def _moved(owner: str, attribute: str, function: str) -> str:
    return (
        f"{owner}.{attribute} is gone or changed meaning in Tornado {tornado.version} / "
        f"this Python: update wsgi_bridge.compat.{function} (and this canary)"
    )


def _serve_once(
    handler: type[tornado.web.RequestHandler], method: str = "GET", body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    """Serve one request with ``handler`` on 127.0.0.1; returns (status, headers, body)."""

    async def main() -> tuple[int, dict[str, str], bytes]:
        sockets = bind_sockets(0, "127.0.0.1")
        port = sockets[0].getsockname()[1]
        server = HTTPServer(tornado.web.Application([(r"/", handler)]))
        server.add_sockets(sockets)
        client = AsyncHTTPClient(force_instance=True)
        try:
            response = await client.fetch(
                f"http://127.0.0.1:{port}/", method=method, body=body, raise_error=False
            )
            return response.code, dict(response.headers), response.body
        finally:
            client.close()
            server.stop()
            await server.close_all_connections()

    return asyncio.run(main())


# ------------------------------------------------------------ HTTP1Connection
def test_http1connection_disconnect_on_finish_is_a_bool_flag() -> None:
    async def main() -> None:
        left, right = socket.socketpair()
        stream = IOStream(left)
        try:
            connection = HTTP1Connection(stream, is_client=False)
            flag = getattr(connection, "_disconnect_on_finish", None)
            assert flag is False, _moved(
                "HTTP1Connection", "_disconnect_on_finish", "close_after_response"
            )
            assert compat.close_after_response(connection) is True
            assert connection._disconnect_on_finish is True
        finally:
            stream.close()
            right.close()

    asyncio.run(main())
    assert compat.close_after_response(object()) is False


class _ClosesAfterResponse(tornado.web.RequestHandler):
    def get(self) -> None:
        assert compat.close_after_response(self.request.connection)
        self.write(b"bye")


def test_close_after_response_closes_a_keep_alive_connection() -> None:
    """What the flag means: Tornado closes after the response, with ``Connection: close``
    for an HTTP/1.1 client that asked for nothing of the sort."""

    async def main() -> bytes:
        sockets = bind_sockets(0, "127.0.0.1")
        port = sockets[0].getsockname()[1]
        server = HTTPServer(tornado.web.Application([(r"/", _ClosesAfterResponse)]))
        server.add_sockets(sockets)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            data = await asyncio.wait_for(reader.read(), 5)  # read() returns at EOF
            writer.close()
            return data
        finally:
            server.stop()
            await server.close_all_connections()

    data = asyncio.run(main())
    assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"bye"), _moved(
        "HTTP1Connection", "_disconnect_on_finish", "close_after_response"
    )


def test_http1_overrides_are_still_called_by_name() -> None:
    """``wsgi_bridge.http1`` overrides these private methods; each must still exist and
    be called, by that name, from the same public or private caller."""
    for class_path, method, caller in compat.HTTP1_OVERRIDES:
        module_name, _, class_name = class_path.rpartition(".")
        cls = getattr(importlib.import_module(module_name), class_name)
        message = _moved(class_name, method, f"HTTP1_OVERRIDES ({method})")
        assert inspect.iscoroutinefunction(getattr(cls, method, None)), message
        assert f"self.{method}(" in inspect.getsource(getattr(cls, caller)), message


class _ConnectionProbe(tornado.web.RequestHandler):
    seen: ClassVar[dict[str, Any]] = {}

    def post(self) -> None:
        connection = self.request.connection
        self.seen["read_finished"] = compat.request_read_finished(connection)
        self.seen["max_body_size"] = compat.connection_max_body_size(connection)
        self.seen["write_finished"] = getattr(connection, "_write_finished", None)
        self.seen["pending_before_close_flag"] = compat.response_pending(connection)
        compat.close_after_response(connection)
        self.seen["pending_after_close_flag"] = compat.response_pending(connection)
        self.write(b"ok")


def test_http1connection_read_state_and_body_limit() -> None:
    status, _, body = _serve_once(_ConnectionProbe, "POST", b"x" * 10)
    assert (status, body) == (200, b"ok")
    seen = _ConnectionProbe.seen
    assert seen["write_finished"] is False, _moved(
        "HTTP1Connection", "_write_finished", "response_pending"
    )
    # Tornado's client says Connection: close, so the flag is set before the handler.
    assert seen["pending_before_close_flag"] is False
    assert seen["pending_after_close_flag"] is False, _moved(
        "HTTP1Connection", "_disconnect_on_finish", "response_pending"
    )
    assert seen["read_finished"] is True, _moved(
        "HTTP1Connection", "_read_finished", "request_read_finished"
    )
    assert seen["max_body_size"] == 100 * 1024 * 1024, _moved(
        "HTTP1Connection", "_max_body_size", "connection_max_body_size"
    )


def test_release_connection_and_deliver_body_on_a_live_connection() -> None:
    class Delegate(httputil.HTTPMessageDelegate):
        def __init__(self) -> None:
            self.chunks: list[bytes] = []

        def data_received(self, chunk: bytes) -> None:
            self.chunks.append(chunk)

    async def main() -> None:
        left, right = socket.socketpair()
        stream = IOStream(left)
        try:
            connection = HTTP1Connection(stream, is_client=False)
            assert compat.request_read_finished(connection) is False, _moved(
                "HTTP1Connection", "_read_finished", "request_read_finished"
            )
            delegate = Delegate()
            await compat.deliver_body(connection, delegate, b"abc")
            assert delegate.chunks == [b"abc"], _moved(
                "HTTP1Connection", "_deliver_body", "deliver_body"
            )
            finish = getattr(connection, "_finish_future", None)
            assert isinstance(finish, Future) and not finish.done(), _moved(
                "HTTP1Connection", "_finish_future", "release_connection"
            )
            compat.release_connection(connection)
            assert finish.done() and not stream.closed(), _moved(
                "HTTP1Connection", "_finish_future/_clear_callbacks", "release_connection"
            )
        finally:
            stream.close()
            right.close()

    asyncio.run(main())


def test_request_context_and_server_connections() -> None:
    async def main() -> None:
        left, right = socket.socketpair()
        stream = IOStream(left)
        try:
            context = compat.request_context(stream, ("10.0.0.1", 1234), None, None)
            assert (context.remote_ip, context.protocol) == ("0.0.0.0", "http"), _moved(
                "httpserver", "_HTTPRequestContext", "request_context"
            )
            server = HTTPServer(tornado.web.Application([]))
            connections = compat.server_connections(server)
            assert isinstance(connections, set) and not connections, _moved(
                "HTTPServer", "_connections", "server_connections"
            )
            assert "self._connections" in inspect.getsource(HTTPServer.handle_stream)
        finally:
            stream.close()
            right.close()

    asyncio.run(main())


# ------------------------------------------------------------ HTTPServerRequest
@tornado.web.stream_request_body
class _BodyFutureProbe(tornado.web.RequestHandler):
    seen: ClassVar[dict[str, Any]] = {}

    def prepare(self) -> None:
        future = compat.body_future(self.request)
        self.seen["prepare"] = (isinstance(future, Future), future is not None and future.done())

    def data_received(self, chunk: bytes) -> None:
        pass

    def post(self) -> None:
        future = compat.body_future(self.request)
        self.seen["post"] = future is not None and future.done()
        self.write(b"ok")


def test_body_future_is_pending_until_the_body_was_read() -> None:
    status, _, _ = _serve_once(_BodyFutureProbe, "POST", b"x" * 1000)
    assert status == 200
    message = _moved("HTTPServerRequest", "_body_future", "body_future")
    assert _BodyFutureProbe.seen["prepare"] == (True, False), message
    assert _BodyFutureProbe.seen["post"] is True, message


# ------------------------------------------------------------ RequestHandler
class _HandlerProbe(tornado.web.RequestHandler):
    seen: ClassVar[dict[str, Any]] = {}

    def get(self) -> None:
        seen = self.seen
        seen["written_before"] = compat.headers_written(self)
        self.set_header("X-Probe", "1")
        headers = compat.response_headers(self)
        seen["headers_type"] = type(headers)
        seen["probe_header"] = headers.get("X-Probe")
        self.write(b"abc")
        self.write(b"def")
        seen["pending"] = list(compat.pending_output(self))
        self.flush()
        seen["written_after"] = compat.headers_written(self)
        seen["pending_after_flush"] = list(compat.pending_output(self))
        self.finish(b"!")


class _ResetProbe(tornado.web.RequestHandler):
    seen: ClassVar[dict[str, Any]] = {}

    def get(self) -> None:
        self.set_status(404)
        self.write(b"lost")
        compat.reset_handler_response(self)
        self.seen["reset"] = (
            self.get_status(),
            dict(compat.response_headers(self)),
            list(compat.pending_output(self)),
        )
        self.seen["reason"] = self._reason  # the status line's phrase goes back to "OK"
        self.write(b"kept")


class _FinishedProbe(tornado.web.RequestHandler):
    seen: ClassVar[dict[str, Any]] = {}

    def get(self) -> None:
        self.finish(b"answered")
        # What mark_handler_finished relies on: _finished is the flag finish() sets.
        self.seen["finished_flag"] = getattr(self, "_finished", None)


def test_handler_headers_written_response_headers_and_pending_output() -> None:
    status, headers, body = _serve_once(_HandlerProbe)
    assert (status, body) == (200, b"abcdef!")
    seen = _HandlerProbe.seen
    assert seen["written_before"] is False and seen["written_after"] is True, _moved(
        "RequestHandler", "_headers_written", "headers_written"
    )
    assert seen["headers_type"] is httputil.HTTPHeaders and seen["probe_header"] == "1", _moved(
        "RequestHandler", "_headers", "response_headers"
    )
    assert seen["pending"] == [b"abc", b"def"] and seen["pending_after_flush"] == [], _moved(
        "RequestHandler", "_write_buffer", "pending_output"
    )
    assert headers.get("X-Probe") == "1"


def test_reset_handler_response_empties_status_headers_and_body() -> None:
    status, headers, body = _serve_once(_ResetProbe)
    assert _ResetProbe.seen["reset"] == (200, {}, []), _moved(
        "RequestHandler", "_status_code/_headers/_write_buffer", "reset_handler_response"
    )
    assert _ResetProbe.seen["reason"] == "OK", _moved(
        "RequestHandler", "_reason", "reset_handler_response"
    )
    assert (status, body) == (200, b"kept")
    assert "Server" not in headers  # Tornado's default headers were not prepared


def test_mark_handler_finished_sets_the_flag_finish_sets() -> None:
    status, _, body = _serve_once(_FinishedProbe)
    assert (status, body) == (200, b"answered")
    assert _FinishedProbe.seen["finished_flag"] is True, _moved(
        "RequestHandler", "_finished", "mark_handler_finished"
    )


# ------------------------------------------------------------ ThreadPoolExecutor
def test_executor_max_workers_and_live_threads() -> None:
    gate = threading.Event()
    executor = concurrent.futures.ThreadPoolExecutor(3)
    try:
        assert isinstance(getattr(executor, "_max_workers", None), int), _moved(
            "ThreadPoolExecutor", "_max_workers", "executor_max_workers"
        )
        assert compat.executor_max_workers(executor) == 3
        assert isinstance(getattr(executor, "_threads", None), set), _moved(
            "ThreadPoolExecutor", "_threads", "live_threads"
        )
        assert compat.live_threads(executor) == 0  # threads start with the first job
        futures = [executor.submit(gate.wait, 5) for _ in range(2)]
        assert compat.live_threads(executor) == 2, _moved(
            "ThreadPoolExecutor", "_threads", "live_threads"
        )
        executor.shutdown(wait=False)
        assert compat.live_threads(executor) == 2  # busy threads outlive shutdown()
        gate.set()
        concurrent.futures.wait(futures, 5)
    finally:
        gate.set()
        executor.shutdown(wait=True)
    assert compat.live_threads(executor) == 0
    assert compat.executor_max_workers(concurrent.futures.Executor()) is None


def test_busy_threads_counts_threads_running_work() -> None:
    gate = threading.Event()
    executor = concurrent.futures.ThreadPoolExecutor(3)
    try:
        assert compat.busy_threads(executor) == 0
        running = threading.Barrier(3)
        futures = [executor.submit(lambda: (running.wait(5), gate.wait(5))) for _ in range(2)]
        running.wait(5)  # both jobs are running
        assert compat.busy_threads(executor) == 2, _moved(
            "ThreadPoolExecutor", "_idle_semaphore", "busy_threads"
        )
        gate.set()
        concurrent.futures.wait(futures, 5)
        assert wait_for(lambda: compat.busy_threads(executor) == 0), _moved(
            "ThreadPoolExecutor", "_idle_semaphore", "busy_threads"
        )
    finally:
        gate.set()
        executor.shutdown(wait=True)


def test_unread_puts_bytes_back_in_front_of_the_read_buffer() -> None:
    """``BaseIOStream._read_buffer`` (bytearray) and ``_read_buffer_size`` (int)."""

    async def main() -> list[bytes]:
        left, right = socket.socketpair()
        reader, writer = IOStream(left), IOStream(right)
        try:
            assert isinstance(reader._read_buffer, bytearray), _moved(
                "BaseIOStream", "_read_buffer", "unread"
            )
            await writer.write(b"head\r\n\r\nrest")
            first = await reader.read_until(b"\r\n\r\n")
            compat.unread(reader, first)
            again = await reader.read_until(b"\r\n\r\n")
            rest = await reader.read_bytes(4)
            return [first, again, rest]
        finally:
            reader.close()
            writer.close()

    assert asyncio.run(main()) == [b"head\r\n\r\n", b"head\r\n\r\n", b"rest"], _moved(
        "BaseIOStream", "_read_buffer_size", "unread"
    )


def test_accept_pending() -> None:
    from tornado.tcpserver import TCPServer

    async def main() -> None:
        server = HTTPServer(tornado.web.Application([]))
        sockets = bind_sockets(0, "127.0.0.1")
        server.add_sockets(sockets)
        try:
            listening = server._sockets
            assert list(listening.values()) == sockets, _moved(
                "TCPServer", "_sockets", "accept_pending"
            )
            assert "self._handle_connection" in inspect.getsource(TCPServer.add_sockets), _moved(
                "TCPServer", "_handle_connection", "accept_pending"
            )
            assert compat.accept_pending(server) == 0  # nothing queued
        finally:
            server.stop()

    asyncio.run(main())


def test_read_buffer_size_and_request_start_line() -> None:
    """``BaseIOStream._read_buffer_size`` and ``HTTP1Connection._request_start_line``,
    which ``HTTP1Connection.awaiting_request`` reads (``HTTPServer.close_connections``)."""

    async def main() -> tuple[int, int, Any, Any]:
        left, right = socket.socketpair()
        reader, writer = IOStream(left), IOStream(right)
        try:
            connection = HTTP1Connection(reader, False)
            before = compat.request_start_line(connection)
            await writer.write(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
            head_read = asyncio.Event()

            class Delegate(httputil.HTTPMessageDelegate):
                def headers_received(self, start_line: Any, headers: Any) -> None:
                    head_read.set()

            # A server connection's read_response waits for the response too: leave it.
            serving = asyncio.ensure_future(connection.read_response(Delegate()))
            await asyncio.wait_for(head_read.wait(), 5)
            after = compat.request_start_line(connection)
            empty = compat.read_buffer_size(reader)
            compat.unread(reader, b"next")
            buffered = compat.read_buffer_size(reader)
            serving.cancel()
            return empty, buffered, before, after
        finally:
            reader.close()
            writer.close()

    empty, buffered, before, after = asyncio.run(main())
    assert (empty, buffered) == (0, 4), _moved(
        "BaseIOStream", "_read_buffer_size", "read_buffer_size"
    )
    assert before is None and after is not None and after.path == "/x", _moved(
        "HTTP1Connection", "_request_start_line", "request_start_line"
    )


class _OddExecutor(concurrent.futures.Executor):
    """An executor with a ``_max_workers`` that is not a thread count."""

    def __init__(self, value: object) -> None:
        self._max_workers = value


@pytest.mark.parametrize("value", [0, -2, "4", 2.0, None])
def test_executor_max_workers_is_none_unless_a_positive_count(value: object) -> None:
    assert compat.executor_max_workers(_OddExecutor(value)) is None


def test_executor_max_workers_of_a_one_thread_pool() -> None:
    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        assert compat.executor_max_workers(executor) == 1


@pytest.mark.parametrize(
    "connection",
    [
        object(),
        SimpleNamespace(_write_finished=False),
        SimpleNamespace(_disconnect_on_finish=False),
    ],
    ids=["neither", "no-disconnect-flag", "no-write-flag"],
)
def test_response_pending_is_false_for_a_connection_without_the_flags(connection: object) -> None:
    assert compat.response_pending(connection) is False


def test_request_read_finished_is_true_for_a_connection_without_the_flag() -> None:
    """Without ``_read_finished`` the request counts as read: no forced close."""
    assert compat.request_read_finished(object()) is True


def test_body_future_of_a_request_without_one_is_none() -> None:
    """Tornado adds ``_body_future`` only for ``@stream_request_body`` handlers."""
    request = httputil.HTTPServerRequest(
        start_line=httputil.RequestStartLine("GET", "/", "HTTP/1.1"),
        headers=httputil.HTTPHeaders({"Host": "t"}),
        connection=None,
    )
    assert compat.body_future(request) is None
