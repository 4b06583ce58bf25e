"""``tornado-bare``: bare Tornado handlers for ``/hello``, ``/json`` and ``/native``.

The upper bound: no WSGI at all.
"""

from __future__ import annotations

from collections.abc import Sequence

import tornado.web

from benchmarks.servers._common import (
    NativeHelloHandler,
    NativeJSONHandler,
    no_access_log,
    parse_args,
    quiet_logging,
    serve_tornado,
)


def make_app() -> tornado.web.Application:
    """Build the bare Tornado application."""
    return tornado.web.Application(
        [
            (r"/hello", NativeHelloHandler),
            (r"/json", NativeJSONHandler),
            (r"/native", NativeJSONHandler),
        ],
        log_function=no_access_log,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Run the bare Tornado server (``--threads`` is accepted and ignored)."""
    args = parse_args(__doc__ or "", argv)
    quiet_logging()
    serve_tornado(make_app, args.host, args.port, processes=args.processes, loop=args.loop)


if __name__ == "__main__":
    main()
