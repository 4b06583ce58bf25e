"""What a running WSGI application can learn about its request: deadline, client gone.

The container puts two objects in every environ (names are module constants):

* ``environ["wsgi_bridge.deadline"]``: a :class:`Deadline`.  With the container's
  ``request_timeout`` set, it expires that many seconds after the request arrived;
  if the application has not started its response by then the client gets ``504``
  and the worker thread is abandoned (its later output is discarded).  Without a
  timeout it never expires.
* ``environ["wsgi_bridge.client_disconnected"]``: a :class:`DisconnectEvent` (the
  ``is_set()`` / ``wait()`` / ``set()`` of ``threading.Event``) set from the IOLoop
  thread when the client connection closes while the application still works on
  the request.  waitress offers the same news as a callable,
  ``environ["waitress.client_disconnected"]()``; here it is ``.is_set()``, and
  ``.wait(timeout)`` can sleep until it happens.
"""

from __future__ import annotations

import threading
import time

#: environ key of the request's :class:`Deadline`.
DEADLINE_KEY = "wsgi_bridge.deadline"
#: environ key of the :class:`DisconnectEvent` set when the client disconnected.
CLIENT_DISCONNECTED_KEY = "wsgi_bridge.client_disconnected"


class Deadline:
    """The time by which a request must have started its response (thread-safe).

    :param at: the deadline as ``time.monotonic()`` seconds, or None for none.

    Every method may be called from any thread; the container calls :meth:`expire`
    on the IOLoop thread when the deadline passes, which wakes :meth:`wait`.
    """

    __slots__ = ("_event", "at")

    def __init__(self, at: float | None) -> None:
        self.at = at
        self._event = threading.Event()

    def remaining(self) -> float | None:
        """Seconds left before the deadline (0.0 once passed), or None without one."""
        if self.at is None:
            return None
        return max(0.0, self.at - time.monotonic())

    def expired(self) -> bool:
        """True once the container gave the request up at its deadline.

        It is set by :meth:`expire` on the IOLoop thread *after* the 504 was claimed,
        so a view that sees True (or is woken by :meth:`wait`) can no longer answer:
        whatever it returns is discarded.  Between the moment :meth:`remaining`
        reaches 0.0 and the IOLoop's timer firing (normally well under a millisecond)
        the application may still answer in time.  False forever without a deadline.
        """
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block up to ``timeout`` seconds (None: no limit) or until :meth:`expired`.

        Use it instead of ``time.sleep`` in a view that polls or backs off, so it
        stops at once when the request is given up.

        :returns: True if the request was given up (the client has its 504), False
            if ``timeout`` ran out first.
        """
        return self._event.wait(timeout)

    def expire(self) -> None:
        """Mark the deadline as passed and wake every :meth:`wait` (the container's)."""
        self._event.set()

    def __repr__(self) -> str:
        return f"<Deadline remaining={self.remaining()} expired={self.expired()}>"


class DisconnectEvent:
    """``threading.Event``'s ``is_set``/``set``/``wait``, built lazily (thread-safe).

    One is created for every request, and almost none is ever waited on: the
    ``threading.Event`` (a ``Condition`` and a lock, ~2 microseconds) is only made
    when :meth:`wait` is first called.  Every method may be called from any thread.
    """

    __slots__ = ("_event", "_flag")

    def __init__(self) -> None:
        self._flag = False
        self._event: threading.Event | None = None

    def is_set(self) -> bool:
        """True once the client disconnected."""
        return self._flag

    def set(self) -> None:
        """Mark the client as gone and wake every :meth:`wait` (the container's)."""
        with _LAZY_LOCK:
            self._flag = True
            event = self._event
        if event is not None:
            event.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block up to ``timeout`` seconds (None: no limit) or until the client is gone.

        :returns: True if the client disconnected, False if ``timeout`` ran out first.
        """
        with _LAZY_LOCK:
            if self._flag:
                return True
            event = self._event
            if event is None:
                event = self._event = threading.Event()
        # A set() from now on finds the event and wakes it.
        return event.wait(timeout)

    def __repr__(self) -> str:
        return f"<DisconnectEvent is_set={self._flag}>"


# Guards the lazy creation in DisconnectEvent against a concurrent set().
_LAZY_LOCK = threading.Lock()

#: The shared deadline of requests without ``request_timeout``: it never expires.
NO_DEADLINE = Deadline(None)
