"""The live hybrid server as tests see it, and WebSocket helpers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from tornado.websocket import WebSocketClientConnection

from config import Settings
from server.build import Hybrid
from server.serve import serve

TEST_SECRET_KEY = "test-secret-key-not-for-production"
"""The ``SECRET_KEY`` of the test settings (signs the test's session cookies)."""


@dataclass
class LiveServer:
    """A running hybrid server: ``url`` is ``http://127.0.0.1:<port>``."""

    hybrid: Hybrid
    port: int
    loop: asyncio.AbstractEventLoop
    stop: asyncio.Event

    @property
    def url(self) -> str:
        """The base URL, without a trailing slash."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        """The base WebSocket URL."""
        return f"ws://127.0.0.1:{self.port}"


ServerFactory = Callable[..., LiveServer]
"""The ``live_server`` fixture: ``live_server(create_flask_app=..., **settings_overrides)``."""

START_TIMEOUT = 10.0
"""Seconds a live server gets to start listening."""

STOP_TIMEOUT = 30.0
"""Seconds a live server gets to shut down (``SHUTDOWN_TIMEOUT`` plus the WebSocket
and connection closing steps of :func:`server.serve.shutdown`, with room to spare)."""

DRAIN_FAILED = "shutdown timeout"
"""How :func:`server.serve.shutdown` begins the warning it logs when the drain of
native or WSGI requests in flight timed out (``drain()`` returned False)."""


class _DrainFailures(logging.Handler):
    """Collect the drain-timeout warnings ``hybrid.server`` logs on one thread."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread_id: int | None = None
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep ``record``'s message if it is a drain timeout on the watched thread."""
        message = record.getMessage()
        if record.thread == self.thread_id and message.startswith(DRAIN_FAILED):
            self.messages.append(message)


class ServerThread:
    """:func:`server.serve.serve` on 127.0.0.1 in a thread of its own, checked when stopped.

    :meth:`start` serves ``hybrid`` and returns the :class:`LiveServer`; :meth:`finish`
    stops it (as SIGTERM does) and fails when the server misbehaved: it re-raises what
    the server thread raised, with its original traceback, or raises
    ``AssertionError`` when the drain timed out or a request slot was never given back.

    :param settings: the server's settings (``port=0`` picks a free port).
    :param hybrid: the built service to serve.
    """

    def __init__(self, settings: Settings, hybrid: Hybrid) -> None:
        self.settings = settings
        self.hybrid = hybrid
        self.server: LiveServer | None = None
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._bound: dict[str, object] = {}
        self._drain_failures = _DrainFailures()
        # A daemon, so a server that never stops cannot hang the interpreter's exit.
        self._thread = threading.Thread(target=self._run, name="live-server", daemon=True)

    def start(self) -> LiveServer:
        """Start serving; return the server once it listens.

        :raises AssertionError: it did not start within :data:`START_TIMEOUT` seconds.
        :raises BaseException: what the server raised while starting (e.g.
            :class:`~server.checks.StartupError`).
        """
        logging.getLogger("hybrid.server").addHandler(self._drain_failures)
        self._thread.start()
        self._drain_failures.thread_id = self._thread.ident
        assert self._ready.wait(START_TIMEOUT), f"server did not start within {START_TIMEOUT} s"
        if self.error is not None:
            self._forget_logs()
            raise self.error
        self.server = LiveServer(
            self.hybrid,
            int(str(self._bound["port"])),
            self._bound["loop"],  # type: ignore[arg-type]
            self._bound["stop"],  # type: ignore[arg-type]
        )
        return self.server

    def _run(self) -> None:
        async def main() -> None:
            self._bound["loop"] = asyncio.get_running_loop()
            self._bound["stop"] = stop = asyncio.Event()
            await serve(self.settings, self.hybrid, on_ready=self._on_ready, stop=stop)

        try:
            asyncio.run(main())
        except BaseException as error:  # re-raised on the test's thread
            self.error = error
            self._ready.set()

    def _on_ready(self, sockets: list[socket.socket]) -> None:
        self._bound["port"] = sockets[0].getsockname()[1]
        self._ready.set()

    def _forget_logs(self) -> None:
        logging.getLogger("hybrid.server").removeHandler(self._drain_failures)

    def problems(self) -> list[str]:
        """What went wrong in the server's shutdown, one sentence each (empty: nothing)."""
        found = [
            f"drain did not finish within SHUTDOWN_TIMEOUT={self.settings.shutdown_timeout} s "
            f"(with in_flight={self.hybrid.container.in_flight}): {message}"
            for message in self._drain_failures.messages
        ]
        native = self.hybrid.application.settings["in_flight"].count
        if self.hybrid.container.in_flight or native:
            found.append(
                "a request never finished or its admission slot leaked: "
                f"in_flight={self.hybrid.container.in_flight} "
                f"(WSGI) and {native} (native) after the server stopped"
            )
        return found

    def finish(self) -> None:
        """Stop the server (if the test has not), wait for it, and check how it ended.

        :raises BaseException: what the server thread raised, with its own traceback
            (the problems below added as notes).
        :raises AssertionError: the server did not stop within :data:`STOP_TIMEOUT`
            seconds, its drain timed out, or a request's slot leaked.
        """
        try:
            if self.server is not None:
                with contextlib.suppress(RuntimeError):  # the loop has already ended
                    self.server.loop.call_soon_threadsafe(self.server.stop.set)
            self._thread.join(STOP_TIMEOUT)
        finally:
            self._forget_logs()
        assert not self._thread.is_alive(), f"server did not stop within {STOP_TIMEOUT} s"
        problems = self.problems()
        if self.error is not None:
            for problem in problems:
                self.error.add_note(f"live server: {problem}")
            raise self.error
        assert not problems, "live server: " + "\n".join(problems)


async def close_websocket(connection: WebSocketClientConnection, timeout: float = 5) -> None:
    """Close a client WebSocket and wait for the closing handshake to finish.

    ``WebSocketClientConnection.close()`` only starts the handshake; if the event
    loop ends before the server answers, the socket stays open until some later
    garbage collection, where its ``ResourceWarning`` fails an unrelated test (or
    the session). Waiting for ``read_message()`` to return ``None`` means the
    socket is closed.

    :param timeout: seconds to wait for the server's close frame.
    """
    closed_by_server = connection.close_code is not None
    connection.close()  # always: Tornado warns about a connection never close()d
    if closed_by_server:
        return  # the socket is closed and the test already read the end (None)
    while await asyncio.wait_for(connection.read_message(), timeout) is not None:
        pass


def refuses_connections(port: int, timeout: float = 10) -> bool:
    """Wait until nothing accepts TCP connections on ``127.0.0.1:port`` (a listener closed).

    Tries to connect every 20 ms; a connection that is still accepted is closed at once,
    and one reset as the listener closes under it is tried again.

    :param port: the TCP port.
    :param timeout: seconds to wait at most.
    :returns: True once a connection is refused, False if one was still accepted at the deadline.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=timeout).close()
        except ConnectionRefusedError:
            return True
        except (ConnectionResetError, ConnectionAbortedError):
            pass  # caught in the listener's backlog as it closed: the next try tells
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def raw_exchange(server: LiveServer, request: bytes) -> bytes:
    """Send the raw bytes ``request`` on a fresh socket; return every byte until the server closes.

    For what no client library sends or shows as it is (a status line without headers).
    """
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def assert_head_is_get_without_the_body(base_url: str, path: str) -> None:
    """``HEAD path`` answers as ``GET path`` without the body (RFC 9110 section 9.3.2).

    Same status and ``Content-Type``; ``Content-Length`` of the body ``GET`` sends.
    """
    with httpx.Client(base_url=base_url) as client:
        get = client.get(path)
        head = client.head(path)
    assert head.status_code == get.status_code
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    assert int(head.headers["content-length"]) == len(get.content)
