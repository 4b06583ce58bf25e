"""``tornado-wsgi``: Tornado's own ``tornado.wsgi.WSGIContainer`` behind a FallbackHandler.

Same layout as ``hybrid`` (native ``/native`` route first) so S4 can run against it.
Note that Tornado's container buffers the whole response body before sending it.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import tornado.web
import tornado.wsgi

from benchmarks.flask_app import app as flask_app
from benchmarks.servers._common import (
    NativeJSONHandler,
    no_access_log,
    parse_args,
    quiet_logging,
    serve_tornado,
)


def make_app(threads: int = 16) -> tornado.web.Application:
    """Build the Tornado application with Tornado's WSGIContainer as the fallback."""
    executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="wsgi")
    container = tornado.wsgi.WSGIContainer(flask_app, executor=executor)
    return tornado.web.Application(
        [
            (r"/native", NativeJSONHandler),
            (r".*", tornado.web.FallbackHandler, {"fallback": container}),
        ],
        log_function=no_access_log,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Run the tornado-wsgi server."""
    args = parse_args(__doc__ or "", argv)
    quiet_logging()
    serve_tornado(
        lambda: make_app(args.threads),
        args.host,
        args.port,
        processes=args.processes,
        loop=args.loop,
    )


if __name__ == "__main__":
    main()
