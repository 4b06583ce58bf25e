"""The task page's notes in a real browser: a note's newlines are shown as line breaks.

Drives Debian's Chromium with Playwright, as ``test_browser.py`` does.
"""

from __future__ import annotations

import httpx

from tests.support.browser import chromium_page, needs_chromium
from tests.support.server import ServerFactory

pytestmark = needs_chromium


def test_a_notes_newlines_are_kept_on_the_page(live_server: ServerFactory) -> None:
    server = live_server()
    with httpx.Client(base_url=server.url, timeout=30) as api, chromium_page() as (page, errors):
        task_id = api.post("/api/tasks", json={"kind": "sleep", "params": {"steps": 1}}).json()[
            "id"
        ]
        for body in ("one line", "first line\nsecond line"):
            added = api.post(f"/api/tasks/{task_id}/notes", json={"body": body})
            assert added.status_code == 201
        page.goto(f"{server.url}/tasks/{task_id}")
        notes = page.locator("#notes li")
        assert notes.count() == 2
        one, two = (notes.nth(i) for i in range(2))
        assert one.evaluate("li => getComputedStyle(li).whiteSpace") == "pre-wrap"
        one_box, two_box = one.bounding_box(), two.bounding_box()
        assert one_box is not None and two_box is not None
        assert two_box["height"] > 1.5 * one_box["height"]  # two lines, not one
        assert errors == []
