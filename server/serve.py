"""Run the hybrid server: check, listen, serve, and shut down gracefully.

Start-up follows Tornado's recommended shape (``asyncio.run(main())``). Before
listening, :func:`serve` checks that the database is reachable and migrated
(:mod:`server.checks`), runs each feature's ``start`` hook, and turns a
failure to listen into one :class:`~server.checks.StartupError` line.

On SIGHUP, the cut-over settings (``FLASK_ROUTES``, ``CANARY_ROUTES``,
``SHADOW_ROUTES``), and only they, are read again and followed from the next request on
(:func:`server.cutover.reload_plan`); nothing else restarts, and no connection
is dropped. With several processes the supervisor validates them too (for the
processes it forks later) and forwards SIGHUP to each.

On SIGTERM or SIGINT, :func:`shutdown` runs:

1. drain: ``/readyz`` answers 503 and every response from now on says
   ``Connection: close`` and closes its connection
   (:meth:`wsgi_bridge.HTTPServer.start_draining`);
2. wait ``DRAIN_GRACE`` seconds while the listener still accepts and serves
   normally, so that a load balancer polling ``/readyz`` stops sending new
   connections before they would be refused;
3. stop accepting connections;

then, within ``SHUTDOWN_TIMEOUT`` seconds in all:

4. let in-flight native and WSGI requests finish;
5. run each feature's ``stop`` hook (stop background work: e.g. queued jobs are
   recorded as cut short, running ones told to stop);
6. close WebSockets with 1001 "going away", then the remaining connections:
   idle ones at once, one whose request has just arrived after its response
   (:meth:`wsgi_bridge.HTTPServer.close_connections`);
7. shut the executor down (queued work cancelled) and wait, without blocking
   the IOLoop, for its threads to finish;
8. run each feature's ``closed`` hook (record what is still unfinished).

With ``PROCESSES`` other than 1, :mod:`server.processes` binds the sockets and
checks the database once, then forks; each child runs :func:`serve` on the
inherited sockets (``sockets=``) and drains as above when the supervisor
forwards it SIGTERM. :func:`run_event_loop` runs the server's coroutine on the
event loop ``EVENT_LOOP`` names (asyncio's, or uvloop's).

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
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import tornado.autoreload
import tornado.httpserver
import tornado.websocket

from config import Settings
from server.build import Hybrid, build_hybrid
from server.checks import StartupError, bind, check_database
from server.cutover import reload_plan
from server.logs import configure_logging
from server.metrics import start_admin_listener
from wsgi_bridge import HTTPServer
from wsgi_bridge.compat import live_threads

__all__ = ["StartupError", "configure_logging", "run_event_loop", "serve", "shutdown"]

T = TypeVar("T")

log = logging.getLogger("hybrid.server")

WEBSOCKET_CLOSE_TIMEOUT = 2.0
"""Seconds WebSocket clients get to answer the closing handshake at shutdown."""

CONNECTIONS_CLOSE_TIMEOUT = 5.0
"""Seconds, at most, a connection whose request arrived as the listener closed gets
to be served at shutdown (idle connections close at once)."""

CONNECTIONS_LAST_CALL = 0.5
"""Seconds such a connection gets at least, even when ``SHUTDOWN_TIMEOUT`` is spent."""


def run_event_loop(main: Coroutine[Any, Any, T], event_loop: str = "asyncio") -> T:
    """Run ``main`` to completion on a new event loop of the kind ``event_loop`` names.

    Like ``asyncio.run``; Tornado runs on any asyncio event loop, uvloop's included.

    :param main: the coroutine to run (e.g. :func:`serve`'s).
    :param event_loop: ``"asyncio"`` (the standard library's loop) or ``"uvloop"``
        (``EVENT_LOOP``; the settings check it is installed).
    :returns: what ``main`` returned.
    :raises ModuleNotFoundError: for ``"uvloop"`` when uvloop is not installed.
    """
    if event_loop == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main)
    return asyncio.run(main)


def event_loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``"uvloop"`` or ``"asyncio"``: which implementation ``loop`` is."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


async def serve(
    settings: Settings,
    hybrid: Hybrid | None = None,
    on_ready: Callable[[list[socket.socket]], None] | None = None,
    stop: asyncio.Event | None = None,
    sockets: list[socket.socket] | None = None,
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
    :param sockets: listening sockets bound already (a child of
        :mod:`server.processes`); then the caller has checked the database too,
        and neither is done here. Default: check, then bind ``host:port``.
    :returns: how many executor threads were still busy when the shutdown
        gave up on them (0 after a clean stop); see :func:`shutdown`.
    :raises StartupError: if the database is unreachable or not migrated to
        the head revision, or the server cannot listen on ``host:port``.
    """
    hybrid = hybrid or build_hybrid(settings)
    # A supervisor's child (sockets given) leaves the environment warning to the supervisor.
    warn_on_reload = sockets is None
    if sockets is None:
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
    try:
        admin = start_admin_listener(settings, hybrid.metrics)
    except OSError as error:
        server.stop()
        raise StartupError(
            f"cannot listen on METRICS_HOST:METRICS_PORT "
            f"{settings.metrics_host}:{settings.metrics_port}: {error.strerror or error}"
        ) from None
    sampler = hybrid.metrics.start_sampling()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(ValueError, RuntimeError):  # not the main thread (tests)
            loop.add_signal_handler(signum, stop.set)
    reloads: set[asyncio.Future[bool]] = set()  # kept referenced until done

    def on_sighup() -> None:
        reload = asyncio.ensure_future(reload_plan(hybrid.cutover, warn=warn_on_reload))
        reloads.add(reload)
        reload.add_done_callback(reloads.discard)

    with contextlib.suppress(ValueError, RuntimeError):  # not the main thread (tests)
        loop.add_signal_handler(signal.SIGHUP, on_sighup)
        # manage.py serve (and each child of server.processes) starts with SIGHUP
        # blocked, so one sent during start-up waited for this handler: take it now.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})
    log.info("routes: %s", hybrid.cutover.plan.describe())
    if settings.autoreload:
        tornado.autoreload.start()
    log.info("event loop: %s", event_loop_name(loop))
    for sock in sockets:
        host, port = sock.getsockname()[:2]
        log.info("serving on http://%s:%d (threads=%d)", host, port, settings.threads)
    if on_ready is not None:
        on_ready(sockets)
    try:
        await stop.wait()
    finally:
        sampler.stop()
        busy = await shutdown(
            hybrid, server, settings.shutdown_timeout, grace=settings.drain_grace or 0.0
        )
        if admin is not None:
            admin.stop()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(signum)
    return busy


async def shutdown(
    hybrid: Hybrid,
    server: tornado.httpserver.HTTPServer,
    timeout: float,
    grace: float = 0.0,
) -> int:
    """Turn not-ready, wait the grace period, stop accepting, drain, close everything.

    The steps are listed in this module's docstring; all of them together take
    about ``grace + timeout`` seconds at most (plus up to
    :data:`WEBSOCKET_CLOSE_TIMEOUT` and :data:`CONNECTIONS_CLOSE_TIMEOUT` for
    clients that do not hang up).

    :param hybrid: the running service.
    :param server: its HTTP server; a :class:`wsgi_bridge.HTTPServer` also makes
        every response close its connection from the first step on.
    :param timeout: seconds, in all, for in-flight requests and background work to
        finish, counted from the end of the grace period.
    :param grace: seconds ``/readyz`` answers 503 while the listener still accepts
        and serves (``DRAIN_GRACE``).
    :returns: how many executor threads are still busy (background work that does not
        call ``report``, a blocked view); 0 after a clean stop. Python would
        wait for them at interpreter exit, so the caller should exit without
        joining them (``manage.py`` calls ``os._exit(0)``).
    """
    loop = asyncio.get_running_loop()
    hybrid.draining.set()
    if isinstance(server, HTTPServer):
        server.start_draining()
    if grace > 0:
        log.info("draining: /readyz answers 503; the listener closes in %g s", grace)
        await asyncio.sleep(grace)
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
    # Idle connections close now; one whose request has just arrived is served first,
    # within what is left of the timeout (at least CONNECTIONS_LAST_CALL: a request
    # still running past the timeout is stuck, and is not waited for twice).
    wait = min(CONNECTIONS_CLOSE_TIMEOUT, max(CONNECTIONS_LAST_CALL, deadline - loop.time()))
    if isinstance(server, HTTPServer):
        cut_short = await server.close_connections(wait)
    else:
        cut_short = 0
        await server.close_all_connections()
    if cut_short:
        log.warning(
            "%d connection(s) still serving a request after %.1f s were closed", cut_short, wait
        )
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
