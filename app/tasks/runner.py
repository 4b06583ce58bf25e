"""The in-process backend (``TASK_BACKEND=inprocess``, the default): the shared executor runs tasks.

What one attempt is -- claim, run with ``report()``, record the outcome,
retry after a back-off -- is :mod:`app.tasks.execution`, shared with the
queue backend; this module decides where and when attempts run in one
process.

Every state change is its own short unit of work (:func:`app.database.call_in_session`),
so a long task never holds a database session or a transaction open, and each
change is published to :class:`app.tasks.events.TaskEvents` after it commits.

Three mechanisms keep tasks honest when servers start and stop:

* **A cap.** At most :attr:`TaskRunner.max_running` tasks (``TASK_THREADS``)
  occupy threads of the shared pool at once; the others wait, ``queued``, in
  the runner's own first-in-first-out queue. Flask requests and native
  blocking calls always keep the rest of the pool.
* **Cooperative cancellation.** :meth:`TaskRunner.stop` sets a stop event;
  the ``report(percent)`` callback every kind calls between steps then raises
  :class:`TaskInterrupted`, and the runner records the task ``interrupted``.
  A thread cannot be killed in Python, so a kind that never reports cannot be
  stopped: the server logs it and exits anyway (see
  :func:`server.serve.shutdown`).
* **Leases.** Each task records which process runs it (``runner_id``) and
  when that process last said so (``heartbeat_at``, refreshed every
  :data:`HEARTBEAT_INTERVAL` seconds while it has unfinished tasks). At
  start-up, :func:`recover_interrupted` interrupts only tasks whose lease went
  stale, so a second instance on the same database leaves the first one's live
  tasks alone.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Executor, Future
from typing import Any

from flask import Flask
from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session

from app.database import call_in_session, utcnow
from app.tasks.events import TaskEvents
from app.tasks.execution import (
    INTERRUPTED_ERROR,
    AfterCommit,
    Execution,
    TaskInterrupted,
    lease_expired_clause,
    lease_values,
)
from app.tasks.kinds import TaskKind
from app.tasks.models import RUNNER_ID_MAX_LENGTH, Task, TaskStatus

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 10.0
"""Seconds between two refreshes of a runner's leases (``heartbeat_at``)."""

STALE_AFTER = 3 * HEARTBEAT_INTERVAL
"""Seconds without a heartbeat after which a task's runner is presumed gone."""

UNFINISHED = (TaskStatus.QUEUED.value, TaskStatus.RUNNING.value)

RESUBMIT_DELAY = 1.0
"""Seconds before a task whose attempt failed on the database (locked, restarting) is
submitted again: still ``queued``, it is claimed; left ``running`` by this runner, it is
taken over (:meth:`app.tasks.execution.Execution.claim`)."""

__all__ = [
    "HEARTBEAT_INTERVAL",
    "INTERRUPTED_ERROR",
    "STALE_AFTER",
    "TaskInterrupted",
    "TaskRunner",
    "new_runner_id",
    "recover_interrupted",
]


def new_runner_id() -> str:
    """Return a fresh id for one runner: ``"<hostname>:<pid>:<8 hex digits>"``.

    The random part tells two runners of one process apart (tests) and a
    restarted process from its predecessor should the pid be reused.
    """
    host = socket.gethostname()[: RUNNER_ID_MAX_LENGTH - 32]
    return f"{host}:{os.getpid()}:{secrets.token_hex(4)}"


class TaskRunner:
    """The in-process backend: submits tasks to ``executor``, at most ``max_running`` at once.

    It is a :class:`app.tasks.execution.TaskBackend` (``name = "inprocess"``):
    :meth:`dispatch` stamps the task with this runner's lease in the unit of
    work that queues it and submits it once that commits; a retry's back-off
    is a timer. An attempt cut short by :meth:`stop` is recorded
    ``interrupted`` (``requeue_on_stop = False``): no one else would run it.

    Thread-safe: :meth:`submit` is called from Flask request threads, tasks
    finish on worker threads, :meth:`stop` is called by the server's shutdown.

    :param flask_app: the app whose database records the tasks.
    :param executor: the shared thread pool; a running task occupies one of
        its threads for its whole duration.
    :param events: where each committed state change is published.
    :param max_running: how many tasks may occupy executor threads at once
        (``int`` >= 1); the feature passes ``TASK_THREADS``
        (:func:`app.tasks.settings.task_threads`).
    :param heartbeat_interval: seconds between lease refreshes.
    :param runner_id: this runner's lease owner id; default :func:`new_runner_id`.
    :raises ValueError: if ``max_running`` < 1 or ``heartbeat_interval`` <= 0.
    """

    def __init__(
        self,
        flask_app: Flask,
        executor: Executor,
        events: TaskEvents,
        *,
        max_running: int = 1,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        runner_id: str | None = None,
    ) -> None:
        if max_running < 1:
            raise ValueError(f"max_running must be at least 1 (got {max_running})")
        if heartbeat_interval <= 0:
            raise ValueError(f"heartbeat_interval must be positive (got {heartbeat_interval})")
        self.flask_app = flask_app
        self.executor = executor
        self.events = events
        self.max_running = max_running
        self.heartbeat_interval = heartbeat_interval
        self.runner_id = runner_id or new_runner_id()
        self._lock = threading.Lock()
        self._waiting: deque[int] = deque()  # FIFO; not yet handed to the executor
        self._active: set[int] = set()  # handed to the executor, not finished
        self._futures: dict[int, Future[None]] = {}
        self._stopping = threading.Event()
        self._wakeup = threading.Event()  # a task finished, or stop(): re-check at once
        self._heartbeat_thread: threading.Thread | None = None
        self._timers: set[threading.Timer] = set()  # retries waiting for their back-off
        self.execution = Execution(
            flask_app,
            events,
            self,
            runner_id=self.runner_id,
            stopping=self._stopping,
            stale_after=3 * heartbeat_interval,
        )

    name = "inprocess"
    requeue_on_stop = False

    def dispatch(self, task: Task, kind: TaskKind, delay: float = 0.0) -> AfterCommit | None:
        """Stamp ``task`` with this runner's lease; submit it once the unit of work commits.

        The lease is taken in the same unit of work, so no other instance's
        recovery sweep can see the task unowned between the commit and the
        submit. See :class:`app.tasks.execution.TaskBackend`.

        :param delay: seconds to wait (a timer) before submitting: a retry's back-off.
        """
        task.runner_id = self.runner_id
        for name, value in lease_values(self.execution.stale_after).items():
            setattr(task, name, value)
        task_id = task.id
        if delay <= 0:
            return lambda: self._submit_quietly(task_id)
        return lambda: self._submit_later(task_id, delay)

    def _submit_quietly(self, task_id: int) -> None:
        self.submit(task_id, leased=True)

    def _submit_later(self, task_id: int, delay: float) -> None:
        def fire() -> None:
            with self._lock:
                self._timers.discard(timer)
            try:
                self.submit(task_id)
            except Exception:
                log.exception("task %s: could not submit its retry", task_id)

        timer = threading.Timer(delay, fire)
        timer.daemon = True
        with self._lock:
            if self._stopping.is_set():
                return  # stop() records the queued task interrupted
            self._timers.add(timer)
            self._start_heartbeat_locked()
        timer.start()

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` has been called (no task starts any more)."""
        return self._stopping.is_set()

    @property
    def active_ids(self) -> frozenset[int]:
        """Ids of the tasks handed to the executor and not finished (at most ``max_running``)."""
        with self._lock:
            return frozenset(self._active)

    @property
    def waiting_ids(self) -> list[int]:
        """Ids of the tasks waiting in the runner's queue, first to run first."""
        with self._lock:
            return list(self._waiting)

    def submit(self, task_id: int, *, leased: bool = False) -> Future[None]:
        """Take the lease of the committed, ``queued`` task ``task_id`` and run it.

        It starts on the executor at once if fewer than :attr:`max_running`
        tasks are active, else it waits (still ``queued``) in the runner's
        queue. Once the runner is stopping, the task is recorded
        ``interrupted`` instead. Blocking (one database write): call it from a
        worker thread.

        :param leased: the caller stamped the lease already (:meth:`dispatch`,
            in the unit of work that queued the task): no database write here.
        :returns: a future resolved (with ``None``) when the task has reached a
            final state, or will never run; it never raises the task's error.
        """
        future: Future[None] = Future()
        future.set_running_or_notify_cancel()
        if not (leased or self._stopping.is_set()):
            self._take_lease(task_id)
        start = False
        with self._lock:
            stopping = self._stopping.is_set()
            if not stopping:
                self._futures[task_id] = future
                if len(self._active) < self.max_running:
                    self._active.add(task_id)
                    start = True
                else:
                    self._waiting.append(task_id)
                self._start_heartbeat_locked()
        if stopping:
            self._interrupt(Task.id == task_id, Task.status.in_(UNFINISHED))
            future.set_result(None)
        elif start:
            self._dispatch(task_id)
        return future

    def run(self, task_id: int) -> None:
        """Run one attempt of task ``task_id`` in the calling thread (:class:`Execution`).

        Claims it (if it is still ``queued``), calls its kind's function, and
        records the outcome: ``succeeded``, ``failed``, ``cancelled``,
        ``interrupted`` if the runner stopped meanwhile, or ``queued`` again
        for a retry after a back-off. Never raises for a failing task: the
        failure is data.
        """
        if self._stopping.is_set():
            self._interrupt(Task.id == task_id, Task.status == TaskStatus.QUEUED.value)
            return
        verdict = self.execution.run(task_id)
        if verdict in ("skipped", "missing"):
            log.warning("task %s is no longer queued; not running it", task_id)

    def heartbeat(self) -> int:
        """Refresh the lease of every unfinished task of this runner, in one UPDATE.

        Blocking (one database write). Called every :attr:`heartbeat_interval`
        seconds by the runner's own timer thread while it has unfinished tasks.

        :returns: how many tasks were refreshed.
        """

        def refresh(session: Session) -> int:
            result = session.execute(
                update(Task)
                .where(Task.runner_id == self.runner_id, Task.status.in_(UNFINISHED))
                .values(**lease_values(self.execution.stale_after))
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

        return call_in_session(self.flask_app, refresh)

    def stop(self) -> int:
        """Stop running tasks: nothing new starts; running tasks are told to stop.

        Sets the stop event, so each running task raises
        :class:`TaskInterrupted` at its next ``report()``; ends the heartbeat
        timer (waiting up to 5 s for a refresh in progress); empties the
        runner's queue and records every task of this runner that has not
        started (waiting here or in the executor's queue) ``interrupted``.
        Idempotent. Blocking (database writes): call it off the IOLoop.

        :returns: how many queued tasks were marked ``interrupted``.
        """
        with self._lock:
            self._stopping.set()
            waiting = list(self._waiting)
            self._waiting.clear()
            futures = [self._futures.pop(task_id) for task_id in waiting]
            timer = self._heartbeat_thread
            retries = list(self._timers)
            self._timers.clear()
        for retry in retries:
            retry.cancel()
        self._wakeup.set()
        if timer is not None and timer is not threading.current_thread():
            timer.join(5)  # so no refresh runs after the caller disposes of the engine
        count = self._interrupt(
            Task.runner_id == self.runner_id, Task.status == TaskStatus.QUEUED.value
        )
        for future in futures:
            future.set_result(None)
        if count:
            log.warning("marked %d queued task(s) interrupted: the server is stopping", count)
        return count

    def interrupt_unfinished(self) -> int:
        """Record every ``queued`` or ``running`` task of this runner ``interrupted`` now.

        The last step of a shutdown (for tasks whose thread did not stop in
        time, e.g. a kind that never calls ``report``) and of an autoreload,
        so that the next start does not have to wait for their lease to go
        stale. Blocking (database writes).

        :returns: how many tasks were marked.
        """
        count = self._interrupt(Task.runner_id == self.runner_id, Task.status.in_(UNFINISHED))
        if count:
            log.warning("marked %d unfinished task(s) of this process interrupted", count)
        return count

    # -- internals --------------------------------------------------------------------------

    def _dispatch(self, task_id: int) -> None:
        try:
            future = self.executor.submit(self._run_slot, task_id)
        except RuntimeError:  # the executor has been shut down
            self._interrupt(Task.id == task_id, Task.status == TaskStatus.QUEUED.value)
            self._release(task_id)
            return
        # cancel_futures=True at shutdown drops it unrun: free its slot all the same.
        future.add_done_callback(lambda done: self._release(task_id) if done.cancelled() else None)

    def _run_slot(self, task_id: int) -> None:
        try:
            self.run(task_id)
        except Exception:  # the database failed: the task may stay unfinished, its slot may not
            log.exception(
                "task %s: could not record its state; trying again in %g s", task_id, RESUBMIT_DELAY
            )
            self._submit_later(task_id, RESUBMIT_DELAY)  # claimed again, or taken over
        finally:
            self._release(task_id)

    def _release(self, task_id: int) -> None:
        """Free ``task_id``'s slot and hand the next waiting task to the executor."""
        next_id = None
        with self._lock:
            self._active.discard(task_id)
            future = self._futures.pop(task_id, None)
            if self._waiting and not self._stopping.is_set():
                next_id = self._waiting.popleft()
                self._active.add(next_id)
        self._wakeup.set()
        if future is not None and not future.done():
            future.set_result(None)
        if next_id is not None:
            self._dispatch(next_id)

    def _start_heartbeat_locked(self) -> None:
        if self._heartbeat_thread is None:
            self._heartbeat_thread = threading.Thread(
                target=self._beat, name="task-heartbeat", daemon=True
            )
            self._heartbeat_thread.start()

    def _beat(self) -> None:
        """Timer thread: refresh leases while this runner has unfinished tasks.

        A daemon thread of its own (not the shared pool, which may be full),
        so it never delays interpreter exit; it ends when the runner is idle
        or stopping and is started again by the next :meth:`submit`.
        """
        next_beat = time.monotonic() + self.heartbeat_interval
        while True:
            with self._lock:
                if self._stopping.is_set() or not (self._active or self._waiting or self._timers):
                    self._heartbeat_thread = None
                    return
            delay = next_beat - time.monotonic()
            if delay > 0:
                if self._wakeup.wait(delay):
                    self._wakeup.clear()
                continue  # woken (a task finished, or stop()): re-check, keep the schedule
            next_beat = time.monotonic() + self.heartbeat_interval
            try:
                self.heartbeat()
            except Exception:
                log.exception("could not refresh the leases of runner %s", self.runner_id)

    def _take_lease(self, task_id: int) -> None:
        def stamp(session: Session) -> None:
            session.execute(
                update(Task)
                .where(Task.id == task_id)
                .values(runner_id=self.runner_id, **lease_values(self.execution.stale_after))
            )

        call_in_session(self.flask_app, stamp)

    def _interrupt(self, *conditions: ColumnElement[bool]) -> int:
        """Record the tasks matching ``conditions`` ``interrupted``; publish each."""
        changed = _interrupt_where(self.flask_app, conditions)
        for data in changed:
            self.events.publish({"type": "task", "task": data})
        return len(changed)


def _interrupt_where(
    flask_app: Flask, conditions: Iterable[ColumnElement[bool]]
) -> list[dict[str, Any]]:
    conditions = list(conditions)

    def mark(session: Session) -> list[dict[str, Any]]:
        tasks = session.scalars(select(Task).where(*conditions).order_by(Task.id)).all()
        now = utcnow()
        for task in tasks:
            task.status = TaskStatus.INTERRUPTED.value
            task.error = INTERRUPTED_ERROR
            task.finished_at = now
        session.flush()
        return [task.to_dict() for task in tasks]

    return call_in_session(flask_app, mark)


def recover_interrupted(
    flask_app: Flask, stale_after: float = STALE_AFTER, *, exclude_runner: str | None = None
) -> int:
    """Mark ``queued``/``running`` tasks whose runner is gone as ``interrupted``.

    A task's runner is presumed gone when its lease is stale: no heartbeat
    for ``stale_after`` seconds, or none at all (a task no runner took, or one
    from before leases existed). A task another live instance is running has
    a fresh heartbeat and is left alone. Call at server start, before any task
    is submitted; the server also calls it periodically (with
    ``exclude_runner``) so that tasks of a process that died are not left
    ``running`` for ever. Blocking (one database write).

    :param flask_app: the app whose database to use.
    :param stale_after: seconds after which a heartbeat is stale.
    :param exclude_runner: a runner id whose tasks to leave alone (the caller's own).
    :returns: how many tasks were marked.
    """
    conditions: list[ColumnElement[bool]] = [
        Task.status.in_(UNFINISHED),
        lease_expired_clause(stale_after),
    ]
    if exclude_runner is not None:
        conditions.append(or_(Task.runner_id.is_(None), Task.runner_id != exclude_runner))
    changed = _interrupt_where(flask_app, conditions)
    events: TaskEvents | None = flask_app.extensions.get("task_events")
    for data in changed:
        if events is not None:
            events.publish({"type": "task", "task": data})
    count = len(changed)
    if count:
        log.warning("marked %d unfinished task(s) whose runner is gone as interrupted", count)
    return count
