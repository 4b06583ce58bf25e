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
from sqlalchemy import text
from sqlalchemy.orm import Session

from tests.support.routes import HOLD_TIMEOUT, add_native_route, holding_views
from tests.support.server import ServerFactory
from tornado_handlers.base import BaseHandler
from wsgi_bridge.testing import wait_for


class DatabaseProbe(BaseHandler):
    """``GET /_test/db``: one blocking database call on the shared pool."""

    async def get(self) -> None:
        def count_one(session: Session) -> int:
            return int(session.execute(text("SELECT 1")).scalar_one())

        self.write_json({"one": await self.run_in_session(count_one)})


def test_a_native_database_call_answers_while_flask_holds_every_bridge_thread(
    live_server: ServerFactory,
) -> None:
    release = threading.Event()
    server = live_server(holding_views(release))
    add_native_route(server.hybrid, "/_test/db", DatabaseProbe)
    settings = server.hybrid.settings
    # THREADS - RESERVED_THREADS, less what features' own work may hold (background jobs).
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
