"""The skeleton's pages in a real browser: register, see who is logged in, log out.

Drives Debian's Chromium (``/usr/bin/chromium``, installed by ``.ci/run``) with
Playwright; skipped where Chromium is missing.
"""

from __future__ import annotations

from pathlib import Path

from config.defaults import PROJECT_NAME
from tests.support.browser import chromium_page, needs_chromium
from tests.support.server import ServerFactory

pytestmark = needs_chromium


def test_register_log_out_and_log_in_again(live_server: ServerFactory, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    server = live_server()
    with chromium_page() as (page, errors):
        page.goto(f"{server.url}/")
        expect(page.locator("h1")).to_have_text(PROJECT_NAME)
        page.click("text=Register")
        page.fill("input[name=email]", "ada@example.com")
        page.fill("input[name=password]", "correct horse")
        page.fill("input[name=confirm]", "correct horse")
        page.click("#register button[type=submit]")

        expect(page.locator(".flash")).to_have_text("Welcome, ada@example.com.")
        expect(page.locator("#current-user")).to_have_text("ada@example.com")
        page.screenshot(path=str(tmp_path / "registered.png"))

        page.click("#logout button[type=submit]")
        expect(page.locator(".flash")).to_have_text("Logged out.")
        expect(page.locator("#current-user")).to_have_count(0)

        page.click("#login-link")
        page.fill("input[name=email]", "ada@example.com")
        page.fill("input[name=password]", "correct horse")
        page.click("#login button[type=submit]")
        expect(page.locator(".flash")).to_have_text("Logged in as ada@example.com.")
        assert errors == []
