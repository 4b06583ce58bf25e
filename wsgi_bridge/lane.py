"""A lane onto a shared executor: at most ``limit`` of one user's jobs in it at once.

A ``ThreadPoolExecutor`` shared by several users has one FIFO queue: when one user
submits more jobs than there are threads, every other user's job queues behind them.
:class:`ExecutorLane` keeps one user's jobs beyond ``limit`` in its own FIFO and hands
them to the executor one at a time, as its earlier jobs finish, so that user never
occupies more than ``limit`` threads (running or queued in the executor) and the
other ``max_workers - limit`` threads stay free for everyone else.

Thread-safety: :meth:`ExecutorLane.submit` may be called from any thread; a job's end
is seen on the worker thread that ran it, which hands the next waiting job over
itself, under the lane's lock.  Doing the hand-over there, rather than posting it to
an event loop, costs no loop turn per job and keeps working while no loop runs (at
shutdown).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor

log = logging.getLogger("wsgi_bridge")

#: A job of the lane: a callable without arguments; what it returns is discarded.
LaneJob = Callable[[], object]


class ExecutorLane:
    """Submit jobs to ``executor`` with at most ``limit`` of them in it at any time.

    :param executor: the (possibly shared) executor, e.g. a ``ThreadPoolExecutor``.
    :param limit: most jobs of this lane in the executor at once, running or queued
        there (>= 1).  Jobs beyond it wait in the lane, in submission order.
    :raises ValueError: ``limit`` is below 1.

    Jobs run in submission order (FIFO), each exactly once.  A job that raises is
    logged on the ``wsgi_bridge`` logger (the executor would have kept the error in a
    future nobody reads) and still hands its slot over.  If the executor was shut down
    meanwhile (``shutdown(wait=...)`` without ``cancel_futures``), the waiting jobs run
    on the thread that finished the last one, as jobs queued in the executor itself
    would still run.
    """

    __slots__ = ("_active", "_lock", "_waiting", "executor", "limit")

    def __init__(self, executor: Executor, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self.executor = executor
        self.limit = int(limit)
        self._lock = threading.Lock()
        self._waiting: deque[LaneJob] = deque()
        self._active = 0

    @property
    def active(self) -> int:
        """Jobs of this lane in the executor now (running or queued there)."""
        return self._active

    @property
    def backlog(self) -> int:
        """Jobs waiting in the lane for one of its ``limit`` slots."""
        return len(self._waiting)

    def submit(self, job: LaneJob) -> None:
        """Run ``job`` on the executor now if a slot is free, else once one frees up.

        :param job: a callable without arguments.
        :raises RuntimeError: the executor refused the job (it was shut down); the
            job will not run.
        """
        with self._lock:
            if self._active >= self.limit:
                self._waiting.append(job)
                return
            self._active += 1
        try:
            self.executor.submit(self._run, job)
        except BaseException:
            with self._lock:
                self._active -= 1
            raise

    def _run(self, job: LaneJob | None) -> None:
        """The executor job: run ``job``, then hand the slot to the next waiting job."""
        while job is not None:
            try:
                job()
            except BaseException:
                log.exception("a job of the executor lane raised")
            job = self._hand_over()

    def _hand_over(self) -> LaneJob | None:
        """Give the finishing job's slot to the next waiting job (worker thread).

        :returns: a job the caller must run itself (the executor was shut down), or
            None.
        """
        with self._lock:
            if not self._waiting:
                self._active -= 1
                return None
            job = self._waiting.popleft()
        try:
            self.executor.submit(self._run, job)
        except RuntimeError:  # shut down: run it here, as the executor would have
            return job
        return None

    def __repr__(self) -> str:
        return f"<ExecutorLane limit={self.limit} active={self._active} backlog={self.backlog}>"
