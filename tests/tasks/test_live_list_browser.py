"""The task list (``/tasks``) in a real browser, kept live by the WebSocket.

Drives Debian's Chromium with Playwright, as ``test_browser.py`` does. Tasks are
created by another client (the JSON API of either side), never by the page, and the
page is never reloaded until the end: new rows, their progress and the status counts
come from the WebSocket events. At the end the live rows are compared with what the
server renders for the same tasks.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page

from app.tasks import service
from tests.support.browser import chromium_page, needs_chromium
from tests.support.server import ServerFactory
from tests.tasks.support import WAIT_MS, open_watching, register_blocking_kind

pytestmark = needs_chromium

ROWS = "#tasks tbody tr"
"""The list's rows, newest first."""


@pytest.fixture
def released(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Register ``block``: it runs, reporting, until the event is set (after the test at last)."""
    gate = register_blocking_kind(monkeypatch)
    yield gate
    gate.set()


def rows_markup(page: Page) -> list[str]:
    """Each row's markup, whitespace between tags dropped (the live rows are built
    by script, the others by Jinja: the same elements, attributes and text)."""
    markup: list[str] = page.locator(ROWS).evaluate_all(
        "rows => rows.map(row => row.outerHTML.replace(/>\\s+</g, '><').trim())"
    )
    return markup


def expect_counts(page: Page, **counts: int) -> None:
    """Wait until the status counts line shows ``counts`` (``queued=1, ...``)."""
    from playwright.sync_api import expect

    for status, count in counts.items():
        expect(page.locator(f'[data-count="{status}"]')).to_have_text(
            f"{status}: {count}", timeout=WAIT_MS
        )


def test_tasks_created_elsewhere_appear_live_and_the_counts_follow(
    live_server: ServerFactory, released: threading.Event
) -> None:
    from playwright.sync_api import expect

    server = live_server()
    with httpx.Client(base_url=server.url, timeout=30) as api, chromium_page() as (page, errors):
        open_watching(page, f"{server.url}/tasks")
        expect(page.locator("#no-tasks")).to_be_visible()
        expect(page.locator("#tasks")).to_be_hidden()
        expect_counts(page, queued=0, running=0, succeeded=0)

        first = api.post("/api/tasks", json={"kind": "block", "name": "first one"}).json()["id"]
        row = page.locator(ROWS).first
        expect(row.locator(f'a[href="/tasks/{first}"]')).to_have_text(str(first), timeout=WAIT_MS)
        expect(row.locator("td.name")).to_have_text("first one")
        expect(row.locator("td.kind")).to_have_text("block")
        expect(page.locator("#no-tasks")).to_have_count(0)
        expect(page.locator("#tasks")).to_be_visible()
        expect(row.locator(f'[data-status="{first}"]')).to_have_text("running", timeout=WAIT_MS)
        expect_counts(page, queued=0, running=1, succeeded=0)

        # The native side's API; it waits behind "block" (the one task thread).
        second = api.post(
            "/api/v2/tasks", json={"kind": "sleep", "params": {"steps": 1}, "name": "second"}
        ).json()["id"]
        expect(page.locator(ROWS)).to_have_count(2, timeout=WAIT_MS)
        row = page.locator(ROWS).first
        expect(row.locator(f'a[href="/tasks/{second}"]')).to_have_text(str(second))
        expect(row.locator("td.name")).to_have_text("second")
        expect(row.locator(f'[data-status="{second}"]')).to_have_text("queued")
        expect(row.locator(f'[data-attempts="{second}"]')).to_have_text("not started")
        expect_counts(page, queued=1, running=1, succeeded=0)

        released.set()
        expect_counts(page, queued=0, running=0, succeeded=2)
        expect(page.locator(f'[data-attempts="{second}"]')).to_have_text("attempt 1 of 3")
        expect(page.locator(f'[data-progress="{second}"]')).to_have_text("100%")
        live = rows_markup(page)

        page.reload()
        expect(page.locator(ROWS)).to_have_count(2)
        assert rows_markup(page) == live
        expect_counts(page, queued=0, running=0, succeeded=2)
        assert errors == []


def test_the_list_keeps_its_length_and_repeated_or_late_events_change_nothing(
    live_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.sync_api import expect

    monkeypatch.setattr(service, "RECENT_TASKS", 3)
    server = live_server()
    quick = {"kind": "sleep", "params": {"steps": 1, "delay": 0}}
    with httpx.Client(base_url=server.url, timeout=30) as api, chromium_page() as (page, errors):
        ids = [api.post("/api/tasks", json=quick).json()["id"] for _ in range(3)]
        open_watching(page, f"{server.url}/tasks")
        expect_counts(page, succeeded=3)
        expect(page.locator(ROWS)).to_have_count(3)

        newest = api.post("/api/tasks", json=quick).json()["id"]
        expect(page.locator(ROWS).first.locator("a")).to_have_text(str(newest), timeout=WAIT_MS)
        expect_counts(page, queued=0, running=0, succeeded=4)
        expect(page.locator(ROWS)).to_have_count(3)
        expect(page.locator(f'[data-status="{ids[0]}"]')).to_have_count(0)  # the oldest left

        # The same event again (as a reconnecting relay might deliver it), then a new
        # task: events arrive in order, so once the new one shows, the repeat was seen.
        events = server.hybrid.flask_app.extensions["task_events"]
        events.publish({"type": "task", "task": api.get(f"/api/tasks/{newest}").json()})
        last = api.post("/api/tasks", json=quick).json()["id"]
        expect(page.locator(f'[data-status="{last}"]')).to_have_text("succeeded", timeout=WAIT_MS)
        expect_counts(page, queued=0, running=0, succeeded=5)  # the last event: no more change

        # A creation event late behind the runner's (two processes publish them with the
        # queue backend): the task stays succeeded, and nothing is counted.
        late = api.get(f"/api/tasks/{last}").json()
        late.update(status="queued", progress=0, attempts=0, started_at=None, finished_at=None)
        events.publish({"type": "task", "task": late})
        after = api.post("/api/tasks", json=quick).json()["id"]
        expect(page.locator(f'[data-status="{after}"]')).to_have_text("succeeded", timeout=WAIT_MS)
        expect(page.locator(f'[data-status="{last}"]')).to_have_text("succeeded")
        expect_counts(page, queued=0, running=0, succeeded=6)
        assert errors == []


def test_a_change_of_a_task_older_than_the_list_recounts(
    live_server: ServerFactory, monkeypatch: pytest.MonkeyPatch, released: threading.Event
) -> None:
    """The page cannot know the former status of a task it does not show: the counts
    are read again from the server, not guessed."""
    from playwright.sync_api import expect

    monkeypatch.setattr(service, "RECENT_TASKS", 1)
    server = live_server()
    with httpx.Client(base_url=server.url, timeout=30) as api, chromium_page() as (page, errors):
        older = api.post("/api/tasks", json={"kind": "block"}).json()["id"]
        # Waits behind "block" (the one task thread): the list shows only this one.
        shown = api.post("/api/tasks", json={"kind": "sleep", "params": {"steps": 1}}).json()["id"]
        open_watching(page, f"{server.url}/tasks")
        expect(page.locator(ROWS)).to_have_count(1)
        expect(page.locator(f'[data-status="{older}"]')).to_have_count(0)
        expect_counts(page, queued=1, running=1, succeeded=0)

        released.set()
        expect(page.locator(f'[data-status="{shown}"]')).to_have_text("succeeded", timeout=WAIT_MS)
        expect_counts(page, queued=0, running=0, succeeded=2)
        assert errors == []


def test_a_task_created_before_the_socket_subscribed_is_shown_after_its_hello(
    live_server: ServerFactory, released: threading.Event
) -> None:
    """The WebSocket is held (Playwright's WebSocket route) until a task has been
    created after the page's rendering: no event will tell the page about it, the
    re-read on ``hello`` does."""
    from playwright.sync_api import WebSocketRoute, expect

    server = live_server()
    with httpx.Client(base_url=server.url, timeout=30) as api, chromium_page() as (page, errors):
        api.post("/api/tasks", json={"kind": "block"})  # holds the one task thread
        unseen: list[int] = []

        def create_then_connect(socket: WebSocketRoute) -> None:
            new = {"kind": "sleep", "params": {"steps": 1}, "name": "unseen"}
            unseen.append(api.post("/api/tasks", json=new).json()["id"])  # stays queued
            socket.connect_to_server()

        page.route_web_socket("**/ws/tasks", create_then_connect)
        page.goto(f"{server.url}/tasks")
        row = page.locator(ROWS).first
        expect(row.locator("td.name")).to_have_text("unseen", timeout=WAIT_MS)
        expect(row.locator(f'[data-status="{unseen[0]}"]')).to_have_text("queued")
        expect(page.locator(ROWS)).to_have_count(2)
        expect_counts(page, queued=1, running=1, succeeded=0)
        assert errors == []
