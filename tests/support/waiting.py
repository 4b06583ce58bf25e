"""The one polling loop of the suite, for conditions no event or barrier can signal."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(
    predicate: Callable[[], object], timeout: float = 10, step: float = 0.01, what: str = ""
) -> None:
    """Poll ``predicate`` until it returns something true.

    :param predicate: called with no arguments, every ``step`` seconds.
    :param timeout: seconds before giving up.
    :param step: seconds between two calls.
    :param what: the condition in words, for the failure message.
    :raises AssertionError: if ``timeout`` passed first, naming ``what``.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting until {what or predicate!r}")
        time.sleep(step)
