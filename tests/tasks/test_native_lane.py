"""``GET /api/stats`` (a native database query) while Flask holds the shared pool (issue 15).

The example's own native route, on the real service: with Flask views holding every
thread the bridge may use, and more Flask requests waiting, the stats query still
finds a thread of the reserve (``RESERVED_THREADS``) and answers before any view ends.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support.routes import HOLD_TIMEOUT, holding_views
from tests.support.server import ServerFactory
from tests.tasks.support import register_blocking_kind
from wsgi_bridge.testing import wait_for


def test_stats_answer_while_flask_holds_every_bridge_thread(live_server: ServerFactory) -> None:
    release = threading.Event()

    server = live_server(holding_views(release))
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


def test_stats_answer_while_tasks_run_and_flask_holds_its_share(
    live_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process tasks hold pool threads too: the bridge's share leaves them out, so
    Flask views plus running tasks never take the reserve (a fresh user saw
    ``/api/stats`` wait 4.8 s behind a Flask view with 4 tasks running)."""
    gate = register_blocking_kind(monkeypatch)
    release = threading.Event()

    server = live_server(holding_views(release))
    settings, container = server.hybrid.settings, server.hybrid.container
    runner = server.hybrid.flask_app.extensions["task_runner"]
    assert container.max_workers == (
        settings.threads - settings.reserved_thread_count - runner.max_running
    )
    flask_requests = settings.threads + 2
    try:
        for _ in range(runner.max_running):
            created = httpx.post(f"{server.url}/api/tasks", json={"kind": "block"}, timeout=10)
            assert created.status_code == 201, created.text
        assert wait_for(lambda: len(runner.active_ids) == runner.max_running, 10)
        with ThreadPoolExecutor(flask_requests) as clients:
            held = [
                clients.submit(httpx.get, f"{server.url}/_test/hold", timeout=HOLD_TIMEOUT + 10)
                for _ in range(flask_requests)
            ]
            try:
                assert wait_for(lambda: container.in_flight == flask_requests, 10)
                stats = httpx.get(f"{server.url}/api/stats", timeout=HOLD_TIMEOUT + 10)
                assert stats.status_code == 200
                assert stats.json()["tasks"]["running"] == runner.max_running
                assert not any(future.done() for future in held)  # answered while held
            finally:
                release.set()
            assert all(future.result().status_code == 200 for future in held)
    finally:
        gate.set()
