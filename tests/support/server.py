"""The live hybrid server as tests see it, and WebSocket helpers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from tornado.websocket import WebSocketClientConnection

from server.build import Hybrid

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
