"""Counting native requests in flight, so shutdown can wait for them."""

from __future__ import annotations

import asyncio


class InFlight:
    """How many native requests have started and not finished.

    Lives in ``Application.settings["in_flight"]``; :class:`~tornado_handlers.base.BaseHandler`
    counts itself in :meth:`enter` / :meth:`leave`. IOLoop thread only.
    """

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        """A request started."""
        self.count += 1
        self._idle.clear()

    def leave(self) -> None:
        """A request finished (or its connection went away)."""
        self.count = max(0, self.count - 1)
        if self.count == 0:
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is in flight, at most ``timeout`` seconds.

        :returns: ``True`` if idle, ``False`` if the timeout passed first.
        """
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True
