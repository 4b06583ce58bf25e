"""``tasks{status}`` on ``GET /metrics``: the example's collector, counted in the database."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.server import ServerFactory
from tests.tasks.support import wait_for_final


def tasks_by_status(url: str) -> dict[str, float]:
    """The ``tasks`` samples of one scrape, by status."""
    text = httpx.get(url + "/metrics").text
    return {
        sample.labels["status"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "tasks"
        for sample in family.samples
    }


def test_metrics_count_tasks_by_status(live_server: ServerFactory) -> None:
    server = live_server()
    assert tasks_by_status(server.url) == {
        "queued": 0,
        "running": 0,
        "succeeded": 0,
        "failed": 0,
        "interrupted": 0,
        "cancelled": 0,
    }
    created = httpx.post(
        server.url + "/api/tasks", json={"kind": "sleep", "params": {"steps": 1, "delay": 0}}
    )
    assert created.status_code == 201, created.text
    wait_for_final(server.hybrid.flask_app, created.json()["id"])
    counts = tasks_by_status(server.url)
    assert counts["succeeded"] == 1 and sum(counts.values()) == 1
