"""The README's links and pictures point at files of the checkout.

Relative Markdown links and images (``[text](docs/x.md#part)``,
``![alt](docs/images/x.png)``) must name a file that exists; in a generated
project this checks its own README against its own files (a project without
the example must not show the example's pictures).
"""

from __future__ import annotations

import re

from config import PROJECT_ROOT

LINK = re.compile(r"(!?)\[[^\]]*\]\(([^)\s]+)\)")
"""A Markdown link or image: group 1 ``!`` for an image, group 2 its target."""

EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:|^#")
"""A target with a scheme (``https:``, ``mailto:``) or an anchor of the same page."""


def relative_targets(markdown: str, images_only: bool = False) -> list[str]:
    """The files ``markdown`` links to (or shows, with ``images_only``), anchors dropped."""
    return [
        target.split("#", 1)[0]
        for bang, target in LINK.findall(markdown)
        if not EXTERNAL.match(target) and (bang or not images_only)
    ]


def test_every_relative_link_and_picture_of_the_readme_is_a_file() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    missing = [t for t in relative_targets(readme) if not (PROJECT_ROOT / t).is_file()]
    assert missing == []


def test_the_pictures_are_small_pngs() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    for target in relative_targets(readme, images_only=True):
        picture = PROJECT_ROOT / target
        assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", target
        assert picture.stat().st_size < 200_000, target
