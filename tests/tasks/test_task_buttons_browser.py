"""The task page's Cancel and Retry in a real browser, kept live by the WebSocket.

Drives Debian's Chromium with Playwright, as ``test_browser.py`` does. The
task changes state through the API of another client (or the page's own
buttons); the open page is never reloaded, so what it shows comes from the
WebSocket events: the status, the attempts, the error and which button is enabled.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

from tests.support.browser import chromium_page, needs_chromium
from tests.support.server import ServerFactory
from tests.tasks.support import WAIT_MS, open_watching, register_blocking_kind
from wsgi_bridge.testing import wait_for

pytestmark = needs_chromium


@pytest.fixture
def released(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Register ``block``: it runs, reporting, until the event is set (after the test at last)."""
    gate = register_blocking_kind(monkeypatch)
    yield gate
    gate.set()


def test_buttons_follow_the_task_live(
    live_server: ServerFactory, released: threading.Event
) -> None:
    from playwright.sync_api import expect

    server = live_server()
    with httpx.Client(base_url=server.url, timeout=30) as api, chromium_page() as (page, errors):
        api.post("/api/tasks", json={"kind": "block"})  # takes the one task thread
        task_id = api.post("/api/v2/tasks", json={"kind": "block"}).json()["id"]
        open_watching(page, f"{server.url}/tasks/{task_id}")
        status = page.locator(f'[data-status="{task_id}"]')
        cancel = page.locator('button[data-action="cancel"]')
        retry = page.locator('button[data-action="retry"]')
        expect(status).to_have_text("queued")
        expect(cancel).to_be_enabled()
        expect(retry).to_be_disabled()

        api.post(f"/api/v2/tasks/{task_id}/cancel")  # another client cancels it
        expect(status).to_have_text("cancelled", timeout=WAIT_MS)
        expect(page.locator("#error")).to_have_text("cancelled")
        expect(cancel).to_be_disabled()
        expect(retry).to_be_enabled()

        api.post(f"/api/tasks/{task_id}/retry")
        expect(status).to_have_text("queued", timeout=WAIT_MS)
        expect(page.locator("#error")).to_have_text("—")
        expect(cancel).to_be_enabled()
        expect(retry).to_be_disabled()

        released.set()  # both tasks run now, one after the other
        expect(status).to_have_text("succeeded", timeout=WAIT_MS)
        expect(page.locator(f'[data-attempts="{task_id}"]')).to_have_text("attempt 1 of 1")
        expect(cancel).to_be_disabled()
        expect(retry).to_be_disabled()

        page.goto(f"{server.url}/tasks")
        expect(page.locator(f'#tasks [data-attempts="{task_id}"]')).to_have_text("attempt 1 of 1")
        assert errors == []


def test_the_cancel_button_cancels(live_server: ServerFactory, released: threading.Event) -> None:
    from playwright.sync_api import expect

    server = live_server()
    with httpx.Client(base_url=server.url, timeout=30) as api, chromium_page() as (page, errors):
        task_id = api.post("/api/tasks", json={"kind": "block"}).json()["id"]

        def running() -> bool:
            return bool(api.get(f"/api/tasks/{task_id}").json()["status"] == "running")

        assert wait_for(running, WAIT_MS / 1000), "the task did not start"
        page.goto(f"{server.url}/tasks/{task_id}")
        expect(page.locator(f'[data-status="{task_id}"]')).to_have_text("running")
        page.click('button[data-action="cancel"]')
        expect(page.locator(".flash")).to_have_text(
            f"Task {task_id} will stop at its next progress report."
        )
        expect(page.locator(f'[data-status="{task_id}"]')).to_have_text(
            "cancelled", timeout=WAIT_MS
        )
        expect(page.locator('button[data-action="retry"]')).to_be_enabled(timeout=WAIT_MS)
        assert errors == []
