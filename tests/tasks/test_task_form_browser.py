"""The "Start a task" form and the Retry button in a real browser, with and without JavaScript.

Drives Debian's Chromium with Playwright, as ``test_browser.py`` does. With
JavaScript, choosing a kind shows its fields at once (no reload); without,
the kind is chosen first with a ``GET`` (``/tasks?kind=primes``) and the
form still starts a task of each kind with its own fields.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, ConfigDict

from app.tasks import kinds
from tests.support.browser import chromium_page, needs_chromium
from tests.support.server import ServerFactory
from wsgi_bridge.testing import wait_for

pytestmark = needs_chromium

WAIT_MS = 10_000
"""Milliseconds the browser may take to show a change (generous: CI machines are slow)."""


def task(api: httpx.Client, task_id: int) -> dict[str, Any]:
    """Task ``task_id`` once it is final, as the JSON API gives it."""
    found: list[dict[str, Any]] = []

    def final() -> bool:
        found[:] = [api.get(f"/api/tasks/{task_id}").json()]
        return found[0]["status"] not in ("queued", "running")

    assert wait_for(final, WAIT_MS / 1000), f"task {task_id} did not finish: {found}"
    return found[0]


def test_with_javascript_the_kind_switches_its_fields_without_a_reload(
    live_server: ServerFactory,
) -> None:
    from playwright.sync_api import expect

    server = live_server()
    with httpx.Client(base_url=server.url, timeout=30) as api, chromium_page() as (page, errors):
        page.goto(f"{server.url}/tasks")
        page.evaluate("window.notReloaded = true")
        steps, delay = page.locator("[name=sleep-steps]"), page.locator("[name=sleep-delay]")
        limit = page.locator("[name=primes-limit]")
        expect(page.locator("#show-kind")).to_be_hidden()  # not needed with JavaScript
        expect(steps).to_be_visible()
        expect(delay).to_be_visible()
        expect(limit).to_be_hidden()

        page.select_option("#kind-choice", "primes")
        expect(limit).to_be_visible()
        expect(steps).to_be_hidden()
        expect(delay).to_be_hidden()
        page.select_option("#kind-choice", "sleep")
        expect(steps).to_be_visible()
        expect(limit).to_be_hidden()
        page.select_option("#kind-choice", "primes")
        assert page.evaluate("window.notReloaded") is True

        page.fill("[name=name]", "primes to 100")
        limit.fill("100")
        page.click("#new-task button[type=submit]")
        expect(page.locator(".flash")).to_have_text("Task 1 started.")
        expect(page.locator("#task-name")).to_have_text("primes to 100")
        expect(page.locator('[data-status="1"]')).to_have_text("succeeded", timeout=WAIT_MS)
        expect(page.locator('[data-percent="1"]')).to_have_text("100%")
        done = task(api, 1)
        assert (done["kind"], done["params"], done["name"]) == (
            "primes",
            {"limit": 100},
            "primes to 100",
        )
        assert done["result"] == {"count": 25, "limit": 100}
        assert errors == []


def test_without_javascript_each_kind_is_started_with_its_own_fields(
    live_server: ServerFactory,
) -> None:
    from playwright.sync_api import expect

    server = live_server()
    with (
        httpx.Client(base_url=server.url, timeout=30) as api,
        chromium_page(javascript=False) as (page, _errors),
    ):
        page.goto(f"{server.url}/tasks")
        expect(page.locator("#show-kind")).to_be_visible()  # task-form.js did not run
        expect(page.locator("[name=sleep-steps]")).to_be_visible()
        expect(page.locator("[name=primes-limit]")).to_be_hidden()

        page.select_option("#kind-choice", "primes")  # no script: nothing changes yet
        expect(page.locator("[name=primes-limit]")).to_be_hidden()
        page.click("#show-kind")
        page.wait_for_url("**/tasks?kind=primes")
        expect(page.locator("[name=primes-limit]")).to_be_visible()
        expect(page.locator("[name=sleep-steps]")).to_be_hidden()
        page.fill("[name=primes-limit]", "1000")
        page.click("#new-task button[type=submit]")
        expect(page.locator(".flash")).to_have_text("Task 1 started.")

        page.goto(f"{server.url}/tasks")
        page.select_option("#kind-choice", "sleep")
        page.click("#show-kind")
        page.fill("[name=sleep-steps]", "2")
        page.fill("[name=sleep-delay]", "0.01")
        page.fill("[name=name]", "two naps")
        page.click("#new-task button[type=submit]")
        expect(page.locator(".flash")).to_have_text("Task 2 started.")
        expect(page.locator("#task-name")).to_have_text("two naps")

        primes, sleep = task(api, 1), task(api, 2)
        assert (primes["kind"], primes["params"], primes["result"]["count"]) == (
            "primes",
            {"limit": 1000},
            168,
        )
        assert (sleep["kind"], sleep["params"], sleep["name"]) == (
            "sleep",
            {"steps": 2, "delay": 0.01},
            "two naps",
        )


class NoParams(BaseModel):
    """``flaky`` takes no params."""

    model_config = ConfigDict(extra="forbid")


@pytest.fixture
def healed(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Register ``flaky``: one attempt, which fails until the event is set."""
    heal = threading.Event()

    def run(params: NoParams, report: kinds.Report) -> dict[str, Any]:
        if not heal.is_set():
            raise RuntimeError("the flaky service is down")
        report(100)
        return {"healed": True}

    monkeypatch.setitem(
        kinds.KINDS, "flaky", kinds.TaskKind("flaky", NoParams, run, "test only", max_attempts=1)
    )
    return heal


def test_retry_button_reruns_a_failed_task(
    live_server: ServerFactory, healed: threading.Event
) -> None:
    from playwright.sync_api import expect

    server = live_server()
    with httpx.Client(base_url=server.url, timeout=30) as api, chromium_page() as (page, errors):
        task_id = api.post("/api/tasks", json={"kind": "flaky"}).json()["id"]
        assert task(api, task_id)["status"] == "failed"
        page.goto(f"{server.url}/tasks/{task_id}")
        expect(page.locator(f'[data-status="{task_id}"]')).to_have_text("failed")
        expect(page.locator("#error")).to_contain_text("the flaky service is down")
        retry = page.locator('button[data-action="retry"]')
        expect(retry).to_be_enabled()

        healed.set()
        retry.click()
        expect(page.locator(".flash")).to_have_text(f"Task {task_id} queued again.")
        expect(page.locator(f'[data-status="{task_id}"]')).to_have_text(
            "succeeded", timeout=WAIT_MS
        )
        expect(page.locator(f'[data-percent="{task_id}"]')).to_have_text("100%")
        expect(page.locator("#error")).to_have_text("—")
        expect(retry).to_be_disabled()
        assert task(api, task_id)["result"] == {"healed": True}
        assert errors == []
