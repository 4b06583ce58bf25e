"""Admission by queueing delay: a CoDel-style controller (pure logic, no I/O).

The bridge decides at arrival whether a WSGI request may wait for a worker thread.
A count limit cannot tell a burst the pool clears in a second from a sustained
overload, so the decision follows the *time* requests spend waiting, as CoDel
(Nichols & Jacobson, "Controlling Queue Delay", ACM Queue 10(5), 2012; RFC 8289)
does for packet queues and Facebook's RPC servers do for request queues (Maurer,
"Fail at Scale", ACM Queue 13(8), 2015):

* the *queueing delay* (sojourn time) of a request is the time from its hand-over
  to the thread pool to the moment a worker thread starts it
  (``time.monotonic()`` seconds);
* a queue whose delay drops below ``target`` now and then is a *good* queue, a
  burst being absorbed: everything is admitted;
* when the delay has stayed at or above ``target`` for a whole ``interval``, the
  queue is a *standing* (bad) one: the controller is *shedding*, and an arriving
  request is refused (503) unless fewer than ``max_workers`` requests wait (one
  wave, so the pool never runs dry);
* the queue stops standing as soon as a request starts after less than ``target``,
  or the queue is found empty; shedding goes on for one more ``interval`` after the
  queue last stood (CoDel likewise resumes dropping at once when the delay comes
  back soon), so a sustained overload is held at one wave instead of letting a new
  backlog build every time a request happens to find a free thread;
* a request admitted while the delay was already above target (not yet for an
  interval: CoDel's grace) is *on probation*: if it reaches a thread after waiting
  ``target + interval`` or more while the controller is shedding, it gets 503 then
  instead of running (:meth:`QueueDelayController.late`).  That is how the backlog
  admitted during the interval is cleared quickly under a sustained overload, as
  CoDel drops at dequeue, while a burst that arrived into a good queue is served
  whole however long its last wave waits;
* independently, a hard cap (``limit`` requests in flight) bounds memory.

The delay is observed in two ways, both at no cost to the worker threads: the delay
of each request that started (reported by :meth:`QueueDelayController.started`), and
the age of the oldest request still waiting (passed to
:meth:`QueueDelayController.admit`), which is a lower bound of its delay and lets
the controller notice a standing queue even while no request starts.

Every method takes the current time as an argument, so the logic is tested with a
fake clock; the container calls it on the IOLoop thread only.
"""

from __future__ import annotations

#: Default ``queue_target``: seconds of queueing delay considered acceptable.
DEFAULT_QUEUE_TARGET = 0.1
#: Default ``queue_interval``: seconds the delay must stay above target to shed.
DEFAULT_QUEUE_INTERVAL = 0.5


class QueueDelayController:
    """CoDel-style admission from queueing delay, plus a hard cap in requests.

    :param target: acceptable queueing delay in seconds (> 0); CoDel's *target*.
    :param interval: seconds the delay must stay at or above ``target`` before
        arriving requests are shed (>= 0); CoDel's *interval*.  A burst that the
        pool clears within about ``target + interval`` after arrivals stop is
        served completely.
    :param workers: threads serving requests (>= 1); while shedding, requests are
        still admitted while fewer than this many wait.
    :param limit: hard cap of requests in flight (running + waiting) in requests
        (>= 1); beyond it every arrival is refused.
    :raises ValueError: for a non-positive ``target``, a negative ``interval``, or
        ``workers``/``limit`` below 1.

    Not thread-safe: call it from one thread (the container's IOLoop).
    """

    __slots__ = (
        "_above_since",
        "_last_standing",
        "interval",
        "limit",
        "shed_count",
        "target",
        "workers",
    )

    def __init__(self, target: float, interval: float, workers: int, limit: int) -> None:
        if not target > 0:
            raise ValueError(f"queue_target must be > 0 seconds, got {target}")
        if not interval >= 0:
            raise ValueError(f"queue_interval must be >= 0 seconds, got {interval}")
        if workers < 1 or limit < 1:
            raise ValueError(f"workers and limit must be >= 1, got {workers}, {limit}")
        self.target = float(target)
        self.interval = float(interval)
        self.workers = int(workers)
        self.limit = int(limit)
        #: Requests refused so far (by delay or by the hard cap).
        self.shed_count = 0
        # Since when (monotonic seconds) the queueing delay has been >= target without
        # a break; None while the queue is good.
        self._above_since: float | None = None
        # The last arrival (monotonic seconds) that found the queue standing.
        self._last_standing = float("-inf")

    def started(self, delay: float, now: float) -> None:
        """A request started on a worker thread after waiting ``delay`` seconds.

        :param delay: its queueing delay in seconds.
        :param now: when it started (``time.monotonic()`` seconds).
        """
        if delay < self.target:
            self._above_since = None
        elif self._above_since is None:
            # Its delay has been at or above target since it had waited target.
            self._above_since = now - delay + self.target

    @property
    def above_target(self) -> bool:
        """True while the queueing delay is known to be at or above target."""
        return self._above_since is not None

    def late(self, delay: float, now: float) -> bool:
        """For a request admitted on probation, at its start: True to refuse it (503).

        May be called from a worker thread: it only reads the state.

        :param delay: its queueing delay in seconds.
        :param now: ``time.monotonic()`` seconds.
        :returns: True when it waited ``target + interval`` or more and the controller
            is shedding.
        """
        return delay >= self.target + self.interval and self.shedding(now)

    def standing(self, now: float) -> bool:
        """True when the delay has been at or above target for ``interval`` seconds."""
        since = self._above_since
        return since is not None and now - since >= self.interval

    def shedding(self, now: float) -> bool:
        """True while the queue stands, and for ``interval`` seconds after an arrival
        last found it standing."""
        return self.standing(now) or now - self._last_standing < self.interval

    def admit(self, now: float, in_flight: int, waiting: int, oldest_wait: float | None) -> bool:
        """Decide for one arriving request: True to admit it, False to refuse (503).

        :param now: ``time.monotonic()`` seconds.
        :param in_flight: requests admitted and not finished (running + waiting).
        :param waiting: requests handed to the pool that no thread started yet.
        :param oldest_wait: seconds the oldest of those has waited so far, or None.
        :returns: False when ``in_flight`` reached the hard cap, or when shedding
            and at least ``workers`` requests wait.
        """
        if waiting == 0 or oldest_wait is None:
            self._above_since = None  # an empty queue is a good queue
        elif oldest_wait >= self.target and self._above_since is None:
            self._above_since = now - oldest_wait + self.target
        if self.standing(now):
            self._last_standing = now
        if in_flight >= self.limit or (waiting >= self.workers and self.shedding(now)):
            self.shed_count += 1
            return False
        return True

    def __repr__(self) -> str:
        return (
            f"<QueueDelayController target={self.target}s interval={self.interval}s "
            f"workers={self.workers} limit={self.limit} above_since={self._above_since}>"
        )
