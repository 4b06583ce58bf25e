"""Native blocking work never queues behind Flask requests on the shared pool (issue 15).

The bridge may occupy at most ``THREADS - RESERVED_THREADS`` threads of the one
executor; its other requests wait in the bridge's own queue.  So a native handler's
database call finds a thread even while Flask views hold every thread the bridge may
use and more Flask requests wait.  Real sockets, the real database, Events.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
from flask import Flask
from sqlalchemy import text
from sqlalchemy.orm import Session

from tests.support.routes import add_native_route, with_views
from tests.support.server import ServerFactory
from tornado_handlers.base import BaseHandler
from wsgi_bridge.testing import wait_for

HOLD_TIMEOUT = 20.0
"""Seconds a held Flask view waits for the test's Event at most."""


class DatabaseProbe(BaseHandler):
    """``GET /_test/db``: one blocking database call on the shared pool."""

    async def get(self) -> None:
        def count_one(session: Session) -> int:
            return int(session.execute(text("SELECT 1")).scalar_one())

        self.write_json({"one": await self.run_in_session(count_one)})


def holding_views(release: threading.Event):  # type: ignore[no-untyped-def]
    def add(app: Flask) -> None:
        @app.get("/_test/hold")
        def hold() -> str:
            release.wait(HOLD_TIMEOUT)
            return "released"

    return with_views(add)


def test_a_native_database_call_answers_while_flask_holds_every_bridge_thread(
    live_server: ServerFactory,
) -> None:
    release = threading.Event()
    server = live_server(holding_views(release))
    add_native_route(server.hybrid, "/_test/db", DatabaseProbe)
    settings = server.hybrid.settings
    # THREADS - RESERVED_THREADS, less what features' own work may hold (tasks).
    bridge_threads = server.hybrid.container.max_workers
    assert 1 <= bridge_threads <= settings.bridge_threads
    flask_requests = settings.threads + 2  # every thread's worth, and more waiting
    with ThreadPoolExecutor(flask_requests) as clients:
        held = [
            clients.submit(httpx.get, f"{server.url}/_test/hold", timeout=HOLD_TIMEOUT + 10)
            for _ in range(flask_requests)
        ]
        try:
            assert wait_for(lambda: server.hybrid.container.in_flight == flask_requests, 10)
            assert wait_for(
                lambda: server.hybrid.container.waiting == flask_requests - bridge_threads, 10
            )
            probe = httpx.get(f"{server.url}/_test/db", timeout=HOLD_TIMEOUT + 10)
            assert (probe.status_code, probe.json()) == (200, {"one": 1})
            # It answered while every Flask view was still held, not after.
            assert not any(future.done() for future in held)
        finally:
            release.set()
        responses = [future.result() for future in held]
    assert [(r.status_code, r.text) for r in responses] == [(200, "released")] * flask_requests
