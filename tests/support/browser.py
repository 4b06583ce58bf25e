"""A real browser for tests: Debian's Chromium (``/usr/bin/chromium``) driven by Playwright.

``.ci/run`` installs Chromium; where it is missing, the tests marked
:data:`needs_chromium` are skipped::

    pytestmark = needs_chromium

    def test_page(live_server):
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

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
