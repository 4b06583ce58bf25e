"""The service as ``manage.py serve`` builds it, plus one slow Flask view, for the lane benchmark.

``python -m benchmarks.lane_service --port P``: :func:`server.build.build_hybrid` on the
settings of the environment (``APP_ENV``, ``THREADS``, ``RESERVED_THREADS`` ...), every
feature of ``server/features.py``, served by :func:`server.serve.serve`, with one more
Flask view, ``GET /block?ms=N``, that sleeps ``N`` milliseconds on its worker thread
(a blocking Flask view, as benchmark S4's ``/block``). The database must be migrated
(``manage.py db upgrade``) before.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import Executor

from flask import Flask, request

from app import create_app
from app.feature import Feature
from config import Settings, load_settings
from server.build import build_hybrid
from server.serve import run_event_loop, serve


def with_block_view(settings: Settings, executor: Executor, features: Iterable[Feature]) -> Flask:
    """The service's Flask app with ``GET /block?ms=N`` (sleeps ``N`` ms; default 1000)."""
    app = create_app(settings, executor, features)

    @app.get("/block")
    def block() -> str:
        time.sleep(int(request.args.get("ms", "1000")) / 1000)
        return "blocked"

    return app


def main(argv: Sequence[str] | None = None) -> None:
    """Serve until SIGTERM/SIGINT, on ``--port`` (127.0.0.1)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    settings = load_settings(port=args.port, autoreload=False)
    hybrid = build_hybrid(settings, with_block_view)
    run_event_loop(serve(settings, hybrid), settings.event_loop)


if __name__ == "__main__":
    main()
