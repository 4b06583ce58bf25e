"""Thread-safe fan-out of task events from worker threads to subscribers.

Worker threads publish; subscribers are callables that must themselves be
safe to call from any thread. The native WebSocket handler subscribes with
``functools.partial(io_loop.add_callback, self.on_event)``, which is how a
change made on the Flask side reaches the IOLoop thread safely: Tornado's
``IOLoop.add_callback`` is the one IOLoop method documented as thread-safe.

Single-process only: with several server processes, swap this for a broker
(e.g. Redis pub/sub) behind the same two methods.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

Event = dict[str, Any]
Subscriber = Callable[[Event], object]

log = logging.getLogger(__name__)


class TaskEvents:
    """Publish/subscribe hub for task events (``{"type": "task", "task": {...}}``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add ``subscriber``; return a function that removes it (idempotent).

        :param subscriber: called with each event dict, from the publishing
            thread; it must not block.
        """
        with self._lock:
            self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            with self._lock:
                if subscriber in self._subscribers:
                    self._subscribers.remove(subscriber)

        return unsubscribe

    def publish(self, event: Event) -> None:
        """Hand ``event`` to every subscriber; one failing subscriber is logged
        and does not stop the others."""
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            try:
                subscriber(event)
            except Exception:
                log.exception("task event subscriber %r failed", subscriber)
