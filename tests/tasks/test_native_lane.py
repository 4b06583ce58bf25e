"""``GET /api/stats`` (a native database query) while Flask holds the shared pool (issue 15).

The example's own native route, on the real service: with Flask views holding every
thread the bridge may use, and more Flask requests waiting, the stats query still
finds a thread of the reserve (``RESERVED_THREADS``) and answers before any view ends.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
from flask import Flask

from tests.support.routes import with_views
from tests.support.server import ServerFactory
from wsgi_bridge.testing import wait_for

HOLD_TIMEOUT = 20.0
"""Seconds a held Flask view waits for the test's Event at most."""


def test_stats_answer_while_flask_holds_every_bridge_thread(live_server: ServerFactory) -> None:
    release = threading.Event()

    def add(app: Flask) -> None:
        @app.get("/_test/hold")
        def hold() -> str:
            release.wait(HOLD_TIMEOUT)
            return "released"

    server = live_server(with_views(add))
    container = server.hybrid.container
    flask_requests = server.hybrid.settings.threads + 2
    with ThreadPoolExecutor(flask_requests) as clients:
        held = [
            clients.submit(httpx.get, f"{server.url}/_test/hold", timeout=HOLD_TIMEOUT + 10)
            for _ in range(flask_requests)
        ]
        try:
            assert wait_for(lambda: container.in_flight == flask_requests, 10)
            assert wait_for(lambda: container.waiting == flask_requests - container.max_workers)
            stats = httpx.get(f"{server.url}/api/stats", timeout=HOLD_TIMEOUT + 10)
            assert (stats.status_code, stats.json()["total"]) == (200, 0)
            assert not any(future.done() for future in held)  # answered while held
        finally:
            release.set()
        responses = [future.result() for future in held]
    assert [(r.status_code, r.text) for r in responses] == [(200, "released")] * flask_requests
