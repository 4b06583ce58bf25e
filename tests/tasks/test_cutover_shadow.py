"""Shadowing the example's real ported route, ``task_detail`` (``SHADOW_ROUTES``).

With the native handler primary and with Flask primary (``FLASK_ROUTES``), every
comparison matches: the port answers as the Flask view it replaced. The
mechanism's own tests, on a test-only route, are in ``tests/test_cutover_shadow.py``.
"""

from __future__ import annotations

import httpx

from tests.support.server import LiveServer, ServerFactory
from tests.tasks.support import wait_for_final
from tests.test_cutover_shadow import compared, sample, shadow_counts
from wsgi_bridge.testing import wait_for


def finished_task(server: LiveServer) -> int:
    """Create a primes task through the API and wait until it is final; return its id."""
    created = httpx.post(
        f"{server.url}/api/tasks", json={"kind": "primes", "params": {"limit": 50}}, timeout=10
    )
    assert created.status_code == 201, created.text
    task_id = int(created.json()["id"])
    wait_for_final(server.hybrid.flask_app, task_id)
    return task_id


def test_the_ported_task_detail_matches(live_server: ServerFactory) -> None:
    server = live_server(shadow_routes="task_detail")
    task_id = finished_task(server)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for number in range(1, 11):
            method = "HEAD" if number % 5 == 0 else "GET"
            response = client.request(method, f"/api/tasks/{task_id}")
            assert response.status_code == 200
            assert wait_for(lambda n=number: compared(server, "task_detail", "match") == n), (
                shadow_counts(server, "task_detail")
            )
        missing = client.get("/api/tasks/99999")
        assert missing.status_code == 404
        assert wait_for(lambda: compared(server, "task_detail", "match") == 11)
    assert compared(server, "task_detail", "mismatch") == 0
    assert compared(server, "task_detail", "error") == 0


def test_the_task_detail_shadow_of_a_flask_primary_matches(live_server: ServerFactory) -> None:
    server = live_server(flask_routes="task_detail", shadow_routes="task_detail")
    task_id = finished_task(server)
    before = sample(
        server,
        "http_requests_total",
        side="native",
        route="/api/tasks/([^/]+)",
        method="GET",
        status="200",
    )
    response = httpx.get(f"{server.url}/api/tasks/{task_id}", timeout=10)
    assert response.status_code == 200 and response.headers["vary"] == "Cookie"  # Flask's
    assert wait_for(lambda: compared(server, "task_detail", "match") == 1)
    after = sample(
        server,
        "http_requests_total",
        side="native",
        route="/api/tasks/([^/]+)",
        method="GET",
        status="200",
    )
    assert after == before  # the shadow wrote no request metrics
