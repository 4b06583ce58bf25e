"""The pages in a real browser: start a task and watch it finish live.

Drives Debian's Chromium (``/usr/bin/chromium``, installed by ``.ci/run``)
with Playwright. The detail page's progress is updated by the native
WebSocket only -- the test never reloads the page.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.browser import chromium_page, needs_chromium
from tests.support.server import ServerFactory

pytestmark = needs_chromium


def test_start_a_task_and_watch_it_finish(live_server: ServerFactory, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    server = live_server()
    with chromium_page() as (page, errors):
        page.goto(f"{server.url}/tasks")
        expect(page.locator("h1")).to_have_text("Start a task")
        page.select_option("select[name=kind]", "sleep")
        page.fill("input[name=sleep-steps]", "10")
        page.fill("input[name=sleep-delay]", "0.1")
        page.click("#new-task button[type=submit]")

        expect(page.locator(".flash")).to_have_text("Task 1 started.")
        status = page.locator('[data-status="1"]')
        expect(status).to_have_text("succeeded", timeout=10_000)
        assert page.locator('[data-progress="1"]').evaluate("bar => bar.value") == 100
        expect(page.locator('[data-percent="1"]')).to_have_text("100%")
        expect(page.locator("#result")).to_have_text('{"slept_seconds":1}')
        page.screenshot(path=str(tmp_path / "task-detail.png"))

        page.goto(f"{server.url}/tasks")
        expect(page.locator("#tasks tbody tr")).to_have_count(1)
        assert errors == []
