"""A real browser for tests: Debian's Chromium (``/usr/bin/chromium``) driven by Playwright.

``.ci/run`` installs Chromium; where it is missing, the tests marked
:data:`needs_chromium` are skipped::

    pytestmark = needs_chromium

    def test_page(live_server):
        with chromium_page() as (page, errors):
            page.goto(live_server().url)
            ...
            assert errors == []
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
"""The Chromium executable."""

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""Flags for a headless run as root in a container, with no background traffic."""

needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Chromium is not installed (apt-get install chromium)"
)
"""Skip the test (``pytestmark = needs_chromium``) where Chromium is missing."""


@contextmanager
def chromium_page(*, javascript: bool = True) -> Iterator[tuple[Page, list[str]]]:
    """Open a page in a fresh headless Chromium; close the browser afterwards.

    :param javascript: ``False`` runs no script of the page (Playwright's
        ``java_script_enabled``), to test what works without JavaScript.
    :returns: the Playwright page, and a list that collects the page's
        uncaught JavaScript errors (assert it is empty at the end).
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(java_script_enabled=javascript)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            yield page, errors
        finally:
            browser.close()
