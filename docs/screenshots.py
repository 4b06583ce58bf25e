"""Take the README's screenshots of the example: the task list and a running task's page.

Run from the checkout's root, with the test extras installed (Playwright) and
Debian's Chromium (``apt-get install chromium``)::

    .venv/bin/python -m docs.screenshots

It starts ``manage.py serve`` on a free port with a temporary SQLite database,
creates a few tasks through the JSON API (``POST /api/tasks``: slow ``sleep``
tasks, one of them named, and a ``primes`` task), waits until two run with
their progress between :data:`LOW` and :data:`HIGH` percent, takes the two
pictures with headless Chromium at :data:`VIEWPORT` and stops the server (by
its pid, with ``SIGTERM``). The pictures are :data:`TASK_LIST` and
:data:`TASK_PAGE`; rerun it after changing those pages.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import ViewportSize

from config import PROJECT_ROOT
from tests.support.browser import chromium_page
from tests.support.cli import ServerProcess, environment, run

IMAGES = PROJECT_ROOT / "docs" / "images"
"""Where the pictures go."""

TASK_LIST = IMAGES / "tasks-list.png"
"""The picture of ``/tasks``, with tasks running."""

TASK_PAGE = IMAGES / "task-page.png"
"""The picture of a running task's page (``/tasks/<id>``)."""

VIEWPORT: ViewportSize = {"width": 1200, "height": 800}
"""The browser window, CSS pixels: each picture is this size (the page's top, not all of it)."""

LOW, HIGH = 10.0, 90.0
"""The progress, percent, the pictured running tasks must be between: visibly under way."""

NEW_TASKS: list[dict[str, object]] = [
    {"kind": "sleep", "params": {"steps": 50, "delay": 0.2}, "name": "nightly-report"},
    {"kind": "sleep", "params": {"steps": 50, "delay": 0.3}},
    {"kind": "primes", "params": {"limit": 200_000}},
    {"kind": "sleep", "params": {"steps": 50, "delay": 0.2}},
]
"""What the script creates, in this order (``POST /api/tasks`` bodies)."""

SERVER_SETTINGS = {"PORT": "0", "THREADS": "8", "TASK_THREADS": "2", "AUTORELOAD": "false"}
"""The server's variables: two tasks run at once, the others wait ``queued``."""

WAIT = 30.0
"""Seconds to wait for two tasks to be under way before giving up."""


def create_tasks(client: httpx.Client) -> list[int]:
    """Create :data:`NEW_TASKS` through the JSON API; return their ids.

    :raises httpx.HTTPStatusError: if the API refuses one.
    """
    ids = []
    for body in NEW_TASKS:
        response = client.post("/api/tasks", json=body)
        response.raise_for_status()
        ids.append(int(response.json()["id"]))
    return ids


def running_under_way(client: httpx.Client) -> list[int]:
    """Wait until two tasks run with progress in ``[LOW, HIGH]``; return their ids, oldest first.

    :raises TimeoutError: if that does not happen within :data:`WAIT` seconds.
    """
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        tasks = client.get("/api/tasks", params={"status": "running"}).json()["tasks"]
        under_way = [t["id"] for t in tasks if LOW <= t["progress"] <= HIGH]
        if len(under_way) >= 2:
            return sorted(under_way)
        time.sleep(0.2)
    raise TimeoutError(f"no two tasks between {LOW} and {HIGH} % within {WAIT} s")


def take(base_url: str, task_id: int) -> None:
    """Picture ``/tasks`` as :data:`TASK_LIST` and ``/tasks/<task_id>`` as :data:`TASK_PAGE`.

    :raises AssertionError: if a page has an uncaught JavaScript error.
    """
    IMAGES.mkdir(parents=True, exist_ok=True)
    with chromium_page() as (page, errors):
        page.set_viewport_size(VIEWPORT)
        page.goto(f"{base_url}/tasks", wait_until="networkidle")
        page.screenshot(path=str(TASK_LIST), full_page=False)
        page.goto(f"{base_url}/tasks/{task_id}", wait_until="load")
        time.sleep(1.0)  # a few progress events over the WebSocket move the bar
        page.screenshot(path=str(TASK_PAGE), full_page=False)
        assert errors == [], errors


def main() -> None:
    """Serve a temporary database, fill it, take both pictures, stop the server."""
    with tempfile.TemporaryDirectory() as folder:
        env = environment(f"sqlite:///{Path(folder) / 'screenshots.db'}", None, **SERVER_SETTINGS)
        upgraded = run("db", "upgrade", env=env, cwd=Path(folder))
        assert upgraded.returncode == 0, upgraded.stderr
        server = ServerProcess("--no-reload", env=env, cwd=Path(folder))
        try:
            base_url = f"http://127.0.0.1:{server.port()}"
            with httpx.Client(base_url=base_url, timeout=10) as client:
                create_tasks(client)
                pictured = running_under_way(client)[0]
                take(base_url, pictured)
            status, _ = server.stop(timeout=30)
            assert status == 0, server.log
        finally:
            server.close()
    for picture in (TASK_LIST, TASK_PAGE):
        print(f"{picture.relative_to(PROJECT_ROOT)}: {picture.stat().st_size} bytes")


if __name__ == "__main__":
    main()
