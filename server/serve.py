"""Run the hybrid server: check, listen, serve, and shut down gracefully.

Start-up follows Tornado's recommended shape (``asyncio.run(main())``). Before
listening, :func:`serve` checks that the database is reachable and migrated
(:mod:`server.checks`), runs each feature's ``start`` hook, and turns a
failure to listen into one :class:`~server.checks.StartupError` line.

On SIGTERM or SIGINT, :func:`shutdown` runs, within ``SHUTDOWN_TIMEOUT``
seconds in all:

1. stop accepting connections;
2. let in-flight native and WSGI requests finish;
3. run each feature's ``stop`` hook (stop background work: e.g. queued jobs are
   recorded as cut short, running ones told to stop);
4. close WebSockets with 1001 "going away", then the remaining connections;
5. shut the executor down (queued work cancelled) and wait, without blocking
   the IOLoop, for its threads to finish;
6. run each feature's ``closed`` hook (record what is still unfinished).

A thread that is still busy after that (background work that never checks
whether to stop, a view blocked on I/O) cannot be killed; :func:`serve` returns how many there
are and ``manage.py serve`` then leaves the process without joining them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

import tornado.autoreload
import tornado.httpserver
import tornado.websocket

from config import Settings
from server.build import Hybrid, build_hybrid
from server.checks import StartupError, bind, check_database
from wsgi_bridge import HTTPServer
from wsgi_bridge.compat import live_threads

__all__ = ["StartupError", "configure_logging", "serve", "shutdown"]

log = logging.getLogger("hybrid.server")

WEBSOCKET_CLOSE_TIMEOUT = 2.0
"""Seconds WebSocket clients get to answer the closing handshake at shutdown."""

CONNECTIONS_CLOSE_TIMEOUT = 5.0
"""Seconds idle HTTP connections get to close at shutdown."""


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
) -> int:
    """Serve until SIGTERM/SIGINT (or ``stop`` is set), then shut down gracefully.

    With ``settings.autoreload``, Tornado's autoreloader is started here, on
    the running loop (it schedules its file checks on the current IOLoop, so
    it must not start before the loop runs): a change to any imported module
    restarts the process (``os.execv``); features may add reload hooks
    (``tornado.autoreload.add_reload_hook``) in their ``start``.

    :param settings: the shared settings (``host``, ``port``, ``shutdown_timeout`` ...).
    :param hybrid: what to serve; default :func:`build_hybrid` of ``settings``.
    :param on_ready: called with the listening sockets once they accept
        connections (tests read the port chosen for ``port=0`` from it).
    :param stop: an event that, once set, starts the shutdown like a signal.
    :returns: how many executor threads were still busy when the shutdown
        gave up on them (0 after a clean stop); see :func:`shutdown`.
    :raises StartupError: if the database is unreachable or not migrated to
        the head revision, or the server cannot listen on ``host:port``.
    """
    hybrid = hybrid or build_hybrid(settings)
    check_database(hybrid.flask_app)
    sockets = bind(settings.host, settings.port)
    runtime = hybrid.runtime
    for feature in hybrid.features:
        await feature.start(runtime)
    server = HTTPServer(
        hybrid.application,
        max_body_size=settings.max_body_size,
        idle_connection_timeout=settings.idle_timeout,
        body_timeout=settings.body_timeout,
        trusted_proxies=settings.trusted_proxies,
    )
    server.add_sockets(sockets)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(ValueError, RuntimeError):  # not the main thread (tests)
            loop.add_signal_handler(signum, stop.set)
    if settings.autoreload:
        tornado.autoreload.start()
    for sock in sockets:
        host, port = sock.getsockname()[:2]
        log.info("serving on http://%s:%d (threads=%d)", host, port, settings.threads)
    if on_ready is not None:
        on_ready(sockets)
    try:
        await stop.wait()
    finally:
        busy = await shutdown(hybrid, server, settings.shutdown_timeout)
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(signum)
    return busy


async def shutdown(hybrid: Hybrid, server: tornado.httpserver.HTTPServer, timeout: float) -> int:
    """Stop accepting, drain requests, stop features, close connections and the pool.

    The steps are listed in this module's docstring; all of them together take
    about ``timeout`` seconds at most (plus up to
    :data:`WEBSOCKET_CLOSE_TIMEOUT` and :data:`CONNECTIONS_CLOSE_TIMEOUT` for
    clients that do not hang up).

    :param hybrid: the running service.
    :param server: its HTTP server.
    :param timeout: seconds, in all, for in-flight requests and background work to finish.
    :returns: how many executor threads are still busy (background work that does not
        call ``report``, a blocked view); 0 after a clean stop. Python would
        wait for them at interpreter exit, so the caller should exit without
        joining them (``manage.py`` calls ``os._exit(0)``).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    log.info("shutting down: waiting up to %g s for requests and work in flight", timeout)
    server.stop()
    in_flight = hybrid.application.settings["in_flight"]
    native_done = await in_flight.wait_idle(timeout)
    wsgi_done = await hybrid.container.drain(max(0.0, deadline - loop.time()))
    if not (native_done and wsgi_done):
        log.warning(
            "shutdown timeout: %d native and %d WSGI request(s) still running",
            in_flight.count,
            hybrid.container.in_flight,
        )
    runtime = hybrid.runtime
    for feature in hybrid.features:
        await _hook(feature.stop(runtime), f"stop the {feature.name} feature")
    await close_websockets(hybrid.websockets, WEBSOCKET_CLOSE_TIMEOUT)
    try:
        await asyncio.wait_for(server.close_all_connections(), CONNECTIONS_CLOSE_TIMEOUT)
    except TimeoutError:
        log.warning("some connections did not close within %.0f s", CONNECTIONS_CLOSE_TIMEOUT)
    hybrid.close(wait=False)
    busy = await wait_for_threads(hybrid.executor, max(0.0, deadline - loop.time()))
    for feature in hybrid.features:
        await _hook(feature.closed(runtime), f"close the {feature.name} feature")
    if busy:
        log.error(
            "%d worker thread(s) still busy after the %g s shutdown timeout "
            "(background work that never stops, or a blocked view); exiting without them",
            busy,
            timeout,
        )
    log.info("stopped")
    return busy


async def close_websockets(
    sockets: set[tornado.websocket.WebSocketHandler], timeout: float
) -> None:
    """Close every socket in ``sockets`` with 1001 "going away"; wait up to ``timeout`` s.

    WebSocket handlers add themselves to ``Application.settings["websockets"]``
    in ``open`` and remove themselves in ``on_close``, when the client has
    answered the closing handshake or Tornado gave up waiting.
    """
    if not sockets:
        return
    log.info("closing %d WebSocket(s)", len(sockets))
    for handler in list(sockets):
        handler.close(1001, "server shutting down")
    deadline = asyncio.get_running_loop().time() + timeout
    while sockets and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)


async def wait_for_threads(executor: ThreadPoolExecutor, timeout: float) -> int:
    """Wait up to ``timeout`` seconds for a shut-down ``executor``'s threads to end.

    Polls (every 50 ms) rather than joining, so the IOLoop keeps running.

    :returns: how many threads are still busy (0 if all ended).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (busy := live_threads(executor)) and loop.time() < deadline:
        await asyncio.sleep(0.05)
    return busy


async def _hook(hook: Awaitable[None], what: str) -> None:
    """Await a feature's shutdown hook; a failure is logged and the shutdown goes on."""
    try:
        await hook
    except Exception:
        log.exception("shutdown: could not %s", what)
