"""Helpers shared by the server entry points in :mod:`benchmarks.servers`."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from collections.abc import Callable, Sequence

import tornado.httpserver
import tornado.netutil
import tornado.process
import tornado.web

from benchmarks.flask_app import HELLO_BODY, JSON_PAYLOAD

#: Body size limit for the Tornado-based servers, so that S6 (256 MiB upload) is accepted.
TORNADO_MAX_BODY_SIZE = 1024 * 1024 * 1024
NATIVE_BODY = json.dumps(JSON_PAYLOAD, separators=(",", ":")).encode() + b"\n"


def make_parser(description: str) -> argparse.ArgumentParser:
    """The command line every benchmark server module accepts (modules may add to it)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=16, help="WSGI worker threads")
    parser.add_argument(
        "--processes", type=int, default=1, help="server processes on the port (pre-forked)"
    )
    parser.add_argument(
        "--loop", choices=("asyncio", "uvloop"), default="asyncio", help="the event loop"
    )
    return parser


def parse_args(description: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the common server command line."""
    return make_parser(description).parse_args(argv)


def quiet_logging() -> None:
    """Disable access logs and keep only warnings from server libraries."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("tornado.access").setLevel(logging.CRITICAL)


def no_access_log(handler: tornado.web.RequestHandler) -> None:
    """Tornado ``log_function`` that logs nothing (access logs off)."""


class NativeJSONHandler(tornado.web.RequestHandler):
    """A native Tornado route returning the same small JSON as the Flask ``/json``."""

    def get(self) -> None:
        """Return the small JSON document."""
        self.set_header("Content-Type", "application/json")
        self.write(NATIVE_BODY)


class NativeHelloHandler(tornado.web.RequestHandler):
    """A native Tornado route returning the same plain text as the Flask ``/hello``."""

    def get(self) -> None:
        """Return the plain-text greeting."""
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.write(HELLO_BODY)


def serve_tornado(
    app: tornado.web.Application | Callable[[], tornado.web.Application],
    host: str,
    port: int,
    server_class: type[tornado.httpserver.HTTPServer] = tornado.httpserver.HTTPServer,
    processes: int = 1,
    loop: str = "asyncio",
) -> None:
    """Serve ``app`` on ``host:port`` until the process is terminated.

    :param app: the application, or a function building it; with ``processes`` other
        than 1 pass a function, so that each process builds its own (executor
        included) after the fork.
    :param server_class: Tornado's ``HTTPServer`` or a subclass (the hybrid server
        passes ``wsgi_bridge.HTTPServer``).
    :param processes: processes serving the port: the socket is bound once, then
        ``tornado.process.fork_processes`` forks them (pre-fork, as ``manage.py serve
        --processes`` does; the runner stops the whole process tree by PID).
    :param loop: ``"asyncio"`` or ``"uvloop"``.
    """
    sockets = tornado.netutil.bind_sockets(port, address=host)
    if processes != 1:
        tornado.process.fork_processes(processes, max_restarts=0)
    application = app if isinstance(app, tornado.web.Application) else app()

    async def _main() -> None:
        server = server_class(application, max_body_size=TORNADO_MAX_BODY_SIZE)
        server.add_sockets(sockets)
        await asyncio.Event().wait()

    if loop == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_main())
    else:
        asyncio.run(_main())
