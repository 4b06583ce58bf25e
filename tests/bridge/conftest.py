"""Fixtures of the bridge tests (fixtures only; helpers live in ``wsgi_bridge.testing``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.bridge.apps import Tracker


@pytest.fixture
def tracker() -> Iterator[Tracker]:
    """A fresh :class:`~tests.bridge.apps.Tracker`; its gate opens after the test.

    Opening ``release`` at teardown means a test that failed halfway never leaves a
    worker blocked (which would hang the server's shutdown).
    """
    tracker = Tracker()
    yield tracker
    tracker.release.set()
