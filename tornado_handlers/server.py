"""Run the hybrid server: listen, serve, and shut down gracefully.

Start-up follows Tornado's recommended shape (``asyncio.run(main())``). On
SIGTERM or SIGINT the server stops accepting connections, gives in-flight
native and WSGI requests up to ``SHUTDOWN_TIMEOUT`` seconds to finish, closes
WebSockets and idle connections, shuts the executor down and returns, so the
process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Callable

import tornado.httpserver
import tornado.netutil

from app.tasks.runner import recover_interrupted
from config import Settings
from tornado_handlers.application import Hybrid, build_hybrid

log = logging.getLogger("hybrid.server")


def configure_logging(level: str) -> None:
    """Send every logger to stderr in one format, at ``level`` (``"INFO"`` ...)."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        force=True,
    )


async def serve(
    settings: Settings,
    hybrid: Hybrid | None = None,
    on_ready: Callable[[list[socket.socket]], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT (or ``stop`` is set), then shut down gracefully.

    :param settings: the shared settings (``host``, ``port``, ``shutdown_timeout`` ...).
    :param hybrid: what to serve; default :func:`build_hybrid` of ``settings``.
    :param on_ready: called with the listening sockets once they accept
        connections (tests read the port chosen for ``port=0`` from it).
    :param stop: an event that, once set, starts the shutdown like a signal.
    """
    hybrid = hybrid or build_hybrid(settings)
    recover_interrupted(hybrid.flask_app)
    server = tornado.httpserver.HTTPServer(
        hybrid.application,
        max_body_size=settings.max_body_size,
        idle_connection_timeout=75,
    )
    sockets = tornado.netutil.bind_sockets(settings.port, settings.host)
    server.add_sockets(sockets)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(ValueError, RuntimeError):  # not the main thread (tests)
            loop.add_signal_handler(signum, stop.set)
    for sock in sockets:
        host, port = sock.getsockname()[:2]
        log.info("serving on http://%s:%d (threads=%d)", host, port, settings.threads)
    if on_ready is not None:
        on_ready(sockets)
    try:
        await stop.wait()
    finally:
        await shutdown(hybrid, server, settings.shutdown_timeout)
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(signum)


async def shutdown(hybrid: Hybrid, server: tornado.httpserver.HTTPServer, timeout: float) -> None:
    """Stop accepting, drain in-flight requests for up to ``timeout`` seconds, close.

    :param hybrid: the running service.
    :param server: its HTTP server.
    :param timeout: seconds to wait for in-flight native and WSGI requests.
    """
    log.info("shutting down: waiting up to %.0f s for requests in flight", timeout)
    server.stop()
    in_flight = hybrid.application.settings["in_flight"]
    deadline = asyncio.get_running_loop().time() + timeout
    native_done = await in_flight.wait_idle(timeout)
    remaining = max(0.0, deadline - asyncio.get_running_loop().time())
    wsgi_done = await hybrid.container.drain(remaining)
    if not (native_done and wsgi_done):
        log.warning(
            "shutdown timeout: %d native and %d WSGI request(s) still running",
            in_flight.count,
            hybrid.container.in_flight,
        )
    try:
        await asyncio.wait_for(server.close_all_connections(), 5)
    except TimeoutError:
        log.warning("some connections did not close within 5 s")
    hybrid.close(wait=False)
    log.info("stopped")
