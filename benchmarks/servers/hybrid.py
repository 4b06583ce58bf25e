"""``hybrid``: this project's server, built only from the public ``wsgi_bridge`` API.

A Tornado application with a native ``/native`` route first and, as the last rule, the
benchmark Flask app behind ``wsgi_bridge.WSGIContainer`` with a shared
``ThreadPoolExecutor``. Access logs are off. Container options can be given with
``--bridge-option NAME=VALUE`` (integers are converted), e.g. ``max_queue=64``;
``--processes N`` pre-forks N processes on the port, each building its own application
and executor; ``--loop uvloop`` runs on uvloop.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import tornado.web

from benchmarks.flask_app import app as flask_app
from benchmarks.servers._common import (
    NativeJSONHandler,
    make_parser,
    no_access_log,
    quiet_logging,
    serve_tornado,
)


def parse_bridge_options(items: Sequence[str]) -> dict[str, Any]:
    """Turn ``["name=value", ...]`` into keyword arguments (ints where possible)."""
    options: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {item!r}")
        value: Any
        try:
            value = int(raw)
        except ValueError:
            value = raw
        options[name.strip()] = value
    return options


def make_app(threads: int = 16, **options: Any) -> tornado.web.Application:
    """Build the hybrid Tornado application (raises ImportError without the bridge)."""
    import wsgi_bridge  # imported late: the runner checks its availability first

    executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="wsgi")
    container = wsgi_bridge.WSGIContainer(flask_app, executor=executor, **options)
    return tornado.web.Application(
        [
            (r"/native", NativeJSONHandler),
            (r".*", wsgi_bridge.WSGIFallback(container, log_function=None)),
        ],
        log_function=no_access_log,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Run the hybrid server."""
    parser = make_parser(__doc__ or "")
    parser.add_argument("--bridge-option", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    quiet_logging()
    options = parse_bridge_options(args.bridge_option)
    import wsgi_bridge  # ImportError here, before forking, if the bridge is missing

    serve_tornado(
        lambda: make_app(args.threads, **options),
        args.host,
        args.port,
        server_class=wsgi_bridge.HTTPServer,
        processes=args.processes,
        loop=args.loop,
    )


if __name__ == "__main__":
    main()
