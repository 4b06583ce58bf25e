"""One attempt of a task, the same for both backends: claim it, run it, record what happened.

A backend (:mod:`app.tasks.runner` in process, :mod:`app.tasks.queue` on
Dramatiq) decides *where and when* an attempt runs; this module decides *what
an attempt is*, so both backends give one life cycle (``docs/tasks.md``):

1. **Claim** (:meth:`Execution.claim`), one short unit of work: a ``queued``
   task becomes ``running`` under this runner's lease for attempt
   ``attempts + 1``. A delivery for a task that is running under a live lease,
   or already final, is a duplicate and is dropped; a ``running`` task whose
   lease went stale (its runner died) is taken over as the next attempt, or
   recorded ``failed`` once ``max_attempts`` are spent.
2. **Run** the kind's function in the calling thread with a ``report(percent)``
   callback that records progress and raises :class:`TaskStop` when the task
   must stop: the process is stopping (:class:`TaskInterrupted`), someone
   cancelled it (:class:`TaskCancelled`), it ran past its time limit
   (:class:`TaskTimeLimitExceeded`), or another runner took it over
   (:class:`TaskLeaseLost`).
3. **Record** the outcome, *fenced* by the lease: only while the row still
   says ``running`` under this runner for this attempt. A failure with
   attempts left goes back to ``queued`` and is handed to the backend again
   after a back-off (:meth:`app.tasks.kinds.TaskKind.backoff`) in the same
   unit of work.

Every committed change is published to the task events hub.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

from flask import Flask
from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session

from app.database import call_in_session, utcnow
from app.tasks.events import TaskEvents
from app.tasks.kinds import KINDS, TaskKind
from app.tasks.models import Task, TaskStatus

log = logging.getLogger(__name__)

INTERRUPTED_ERROR = "interrupted: the server stopped before the task finished"
"""The ``error`` of every task recorded ``interrupted``."""

CANCELLED_ERROR = "cancelled"
"""The ``error`` of every task recorded ``cancelled``."""

REPORT_CHECK_INTERVAL = 1.0
"""Seconds between two reads of the task row by ``report()`` when the percentage
has not changed (a changed percentage is written, and read, every time)."""

AfterCommit = Callable[[], None]
"""What a backend wants done once the unit of work that dispatched a task has committed
and its change has been published: the hand-over (a submit) comes last, so the events
it causes (``running``...) always follow the ``queued`` one."""


class TaskBackend(Protocol):
    """Where tasks run: the in-process runner or the queue (see :mod:`app.tasks.client`).

    :ivar name: ``"inprocess"`` or ``"queue"`` (``TASK_BACKEND``).
    :ivar requeue_on_stop: whether an attempt cut short by a stopping process
        goes back to the queue (``True``: someone else will run it) or is
        recorded ``interrupted`` (``False``: nobody would).
    """

    name: str
    requeue_on_stop: bool

    def dispatch(self, task: Task, kind: TaskKind, delay: float = 0.0) -> AfterCommit | None:
        """Hand the ``queued`` task to the backend, inside the unit of work that queued it.

        Called after the row is flushed and before the commit, so that a
        backend that cannot take the task makes the whole unit of work roll back.

        :param task: the task row (its ``id`` is set).
        :param kind: its kind.
        :param delay: seconds before it may start (a retry's back-off).
        :returns: a callable to run once the unit of work committed and its event
            was published (:data:`AfterCommit`), or ``None``.
        :raises app.tasks.client.TaskBackendUnavailable: the backend cannot take it now.
        """
        ...


class TaskStop(BaseException):
    """Raised by ``report()`` when the task must stop; a kind lets it propagate.

    A :class:`BaseException`, as :class:`asyncio.CancelledError` is, so that a
    kind's ``except Exception`` does not swallow it by accident.

    :param task_id: the task being stopped.
    :param reason: why, in words.
    """

    def __init__(self, task_id: int, reason: str) -> None:
        super().__init__(f"task {task_id}: {reason}")
        self.task_id = task_id
        self.reason = reason


class TaskInterrupted(TaskStop):
    """The process running the task is stopping (a graceful shutdown)."""

    def __init__(self, task_id: int) -> None:
        super().__init__(task_id, "interrupted: the server is stopping")


class TaskCancelled(TaskStop):
    """Someone asked for the task to be cancelled (:meth:`app.tasks.client.TaskClient.cancel`)."""

    def __init__(self, task_id: int) -> None:
        super().__init__(task_id, CANCELLED_ERROR)


class TaskTimeLimitExceeded(TaskStop):
    """The attempt ran past its kind's :attr:`~app.tasks.kinds.TaskKind.time_limit`.

    :param limit: the limit, in seconds.
    """

    def __init__(self, task_id: int, limit: float) -> None:
        super().__init__(task_id, f"time limit of {limit:g} s exceeded")
        self.limit = limit


class TaskLeaseLost(TaskStop):
    """Another runner took the task over (this one was presumed dead): this attempt is void."""

    def __init__(self, task_id: int) -> None:
        super().__init__(task_id, "another runner took it over; this attempt's outcome is dropped")


def is_stale(heartbeat_at: datetime | None, stale_after: float) -> bool:
    """Whether a lease last refreshed at ``heartbeat_at`` (UTC) is older than ``stale_after`` s.

    ``None`` (never refreshed) is stale. SQLite gives naive datetimes back; they are UTC.
    """
    if heartbeat_at is None:
        return True
    now = utcnow()
    if heartbeat_at.tzinfo is None:
        now = now.replace(tzinfo=None)
    return heartbeat_at < now - timedelta(seconds=stale_after)


def lease_expired(task: Task, stale_after: float) -> bool:
    """Whether ``task``'s lease ran out: past its ``lease_expires_at``, which its owner
    set from its own interval; for a row without one, ``heartbeat_at`` older than
    ``stale_after`` seconds (the reader's judgement)."""
    if task.lease_expires_at is None:
        return is_stale(task.heartbeat_at, stale_after)
    return is_stale(task.lease_expires_at, 0.0)


def lease_expired_clause(stale_after: float) -> ColumnElement[bool]:
    """:func:`lease_expired` as a SQL condition on :class:`Task` rows."""
    now = utcnow()
    return or_(
        and_(Task.lease_expires_at.is_not(None), Task.lease_expires_at < now),
        and_(
            Task.lease_expires_at.is_(None),
            or_(
                Task.heartbeat_at.is_(None),
                Task.heartbeat_at < now - timedelta(seconds=stale_after),
            ),
        ),
    )


def lease_values(lease_seconds: float) -> dict[str, datetime]:
    """Column values of a lease taken or refreshed now, for ``lease_seconds`` seconds."""
    now = utcnow()
    return {"heartbeat_at": now, "lease_expires_at": now + timedelta(seconds=lease_seconds)}


class Execution:
    """Runs attempts of tasks for one runner (a web process's runner, or a worker process).

    Thread-safe: :meth:`run` is called by many threads at once, one task each.

    :param flask_app: the app whose database holds the tasks.
    :param events: where every committed change is published.
    :param backend: the backend, to hand a task back for a retry.
    :param runner_id: this runner's lease owner id (``host:pid:random``).
    :param stopping: set when the process is stopping: ``report()`` then
        raises :class:`TaskInterrupted`.
    :param stale_after: seconds without a lease refresh after which a running
        task's runner is presumed dead.
    :param time_limit_errors: exceptions that mean "time limit exceeded" besides
        :class:`TaskTimeLimitExceeded` (Dramatiq's ``TimeLimitExceeded``, raised
        into a thread that never reported).
    """

    def __init__(
        self,
        flask_app: Flask,
        events: TaskEvents,
        backend: TaskBackend,
        *,
        runner_id: str,
        stopping: threading.Event,
        stale_after: float,
        time_limit_errors: tuple[type[BaseException], ...] = (),
    ) -> None:
        self.flask_app = flask_app
        self.events = events
        self.backend = backend
        self.runner_id = runner_id
        self.stopping = stopping
        self.stale_after = stale_after
        self.time_limit_errors = time_limit_errors
        self._lock = threading.Lock()
        self._active: dict[int, int] = {}  # task id -> attempt, running in this process
        self._busy: dict[int, int] = {}  # task id -> threads in run() for it (claiming or running)

    @property
    def active(self) -> dict[int, int]:
        """``{task id: attempt}`` of the attempts running in this process now."""
        with self._lock:
            return dict(self._active)

    # -- the attempt ---------------------------------------------------------------------

    def run(self, task_id: int) -> str:
        """Claim task ``task_id`` and, if this runner got it, run one attempt to its end.

        Never raises for a failing task: the failure is data.

        :returns: what happened: ``"missing"`` (no such row: not committed yet,
            or deleted), ``"skipped"`` (a duplicate delivery), ``"cancelled"``
            or ``"failed"`` (recorded by the claim), or the attempt's outcome:
            ``"succeeded"``, ``"failed"``, ``"retrying"``, ``"cancelled"``,
            ``"interrupted"``, ``"requeued"``, ``"lease-lost"``.
        :raises Exception: only if the database fails while claiming.
        """
        with self._lock:
            self._busy[task_id] = self._busy.get(task_id, 0) + 1
        try:
            verdict, task = self._claim(task_id, own=1)
            if verdict != "run" or task is None:
                return verdict
            attempt = int(task["attempts"])
            with self._lock:
                self._active[task_id] = attempt
            try:
                return self._attempt(task, attempt)
            finally:
                with self._lock:
                    self._active.pop(task_id, None)
        finally:
            with self._lock:
                self._busy[task_id] -= 1
                if not self._busy[task_id]:
                    del self._busy[task_id]

    def claim(self, task_id: int) -> tuple[str, dict[str, Any] | None]:
        """Take task ``task_id`` for the next attempt if it is this runner's to run.

        :returns: ``("run", task)`` with the task as data (``attempts`` is this
            attempt's number), or ``(verdict, task-or-None)`` where the verdict
            is ``"missing"``, ``"skipped"``, ``"cancelled"`` or ``"failed"``.
        """
        return self._claim(task_id, own=0)

    def _claim(self, task_id: int, *, own: int) -> tuple[str, dict[str, Any] | None]:
        """:meth:`claim`, by a caller that counts ``own`` times in :attr:`_busy` for it."""

        def change(session: Session) -> tuple[str, dict[str, Any] | None]:
            task = session.get(Task, task_id, with_for_update=True)
            if task is None:
                return "missing", None
            now = utcnow()
            if task.status == TaskStatus.QUEUED.value:
                if task.cancel_requested:
                    _finish(task, TaskStatus.CANCELLED, error=CANCELLED_ERROR)
                    session.flush()
                    return "cancelled", task.to_dict()
            elif task.status == TaskStatus.RUNNING.value and (
                lease_expired(task, self.stale_after) or self._orphaned(task, own)
            ):
                log.warning(
                    "task %s: its runner %s stopped during attempt %d; taking it over",
                    task_id,
                    task.runner_id,
                    task.attempts,
                )
            else:
                return "skipped", None
            if task.attempts >= task.max_attempts:
                _finish(task, TaskStatus.FAILED, error=died_error(task.attempts, task.max_attempts))
                session.flush()
                return "failed", task.to_dict()
            task.status = TaskStatus.RUNNING.value
            task.attempts += 1
            task.progress = 0
            task.runner_id = self.runner_id
            for name, value in lease_values(self.stale_after).items():
                setattr(task, name, value)
            task.started_at = now
            task.finished_at = None
            session.flush()
            return "run", task.to_dict()

        verdict, data = call_in_session(self.flask_app, change)
        if data is not None:
            self._publish(data)
        return verdict, data

    def _orphaned(self, task: Task, own: int) -> bool:
        """Whether ``task`` runs under this runner's lease with no other thread of this
        process claiming or running it (the database failed while its attempt was
        recorded): as good as a dead runner's. ``own`` is the caller's share of
        :attr:`_busy` (a duplicate delivery handled by another thread while the first
        one has just claimed the task is not an orphan)."""
        with self._lock:
            return task.runner_id == self.runner_id and self._busy.get(task.id, 0) <= own

    def _attempt(self, task: dict[str, Any], attempt: int) -> str:
        task_id = int(task["id"])
        kind = KINDS.get(task["kind"])
        if kind is None:
            self._record(task_id, attempt, failed(f"no such kind {task['kind']!r} in this process"))
            return "failed"
        deadline = time.monotonic() + kind.time_limit
        last_percent = 0
        last_check = time.monotonic()

        def report(percent: int) -> None:
            nonlocal last_percent, last_check
            if self.stopping.is_set():
                raise TaskInterrupted(task_id)
            now = time.monotonic()
            if now > deadline:
                raise TaskTimeLimitExceeded(task_id, kind.time_limit)
            percent = max(0, min(100, int(percent)))
            if percent == last_percent and now - last_check < REPORT_CHECK_INTERVAL:
                return
            last_percent, last_check = percent, now
            data = self._progress(task_id, attempt, percent)
            if data is None:
                raise TaskLeaseLost(task_id)
            if data["cancel_requested"]:
                raise TaskCancelled(task_id)

        try:
            params = kind.params_model.model_validate(task["params"])
            result = kind.run(params, report)
            json.dumps(result)  # a result the database cannot store is the kind's failure
            if not isinstance(result, dict):
                raise TypeError(f"the result must be a JSON object, not {type(result).__name__}")
        except TaskLeaseLost:
            log.warning("task %s attempt %d: another runner took it over", task_id, attempt)
            return "lease-lost"
        except TaskCancelled:
            log.info("task %s (%s) cancelled", task_id, kind.name)
            return self._record(task_id, attempt, finished(TaskStatus.CANCELLED, CANCELLED_ERROR))
        except TaskInterrupted:
            if self.backend.requeue_on_stop:
                log.warning(
                    "task %s (%s): the worker is stopping; queued again", task_id, kind.name
                )
                values = {
                    "status": TaskStatus.QUEUED.value,
                    "attempts": attempt - 1,  # not the task's fault: the attempt is given back
                    "progress": 0,
                    "error": "the worker stopped during the attempt; queued again",
                    "runner_id": None,
                }
                return self._record(task_id, attempt, values, kind=kind, delay=0.0, as_="requeued")
            log.warning("task %s (%s) interrupted: the server is stopping", task_id, kind.name)
            return self._record(
                task_id,
                attempt,
                finished(TaskStatus.INTERRUPTED, INTERRUPTED_ERROR),
                as_="interrupted",
            )
        except TaskTimeLimitExceeded as error:
            log.warning("task %s (%s): %s", task_id, kind.name, error.reason)
            return self._record(task_id, attempt, failed(error.reason))
        except self.time_limit_errors:
            reason = f"time limit of {kind.time_limit:g} s exceeded"
            log.warning("task %s (%s): %s (interrupted by the worker)", task_id, kind.name, reason)
            return self._record(task_id, attempt, failed(reason))
        except Exception as error:
            message = f"{type(error).__name__}: {error}"
            if attempt < int(task["max_attempts"]):
                delay = kind.backoff(attempt)
                log.warning(
                    "task %s (%s) attempt %d of %d failed (%s); retrying in %g s",
                    task_id,
                    kind.name,
                    attempt,
                    task["max_attempts"],
                    message,
                    delay,
                    exc_info=True,
                )
                values = {
                    "status": TaskStatus.QUEUED.value,
                    "error": f"attempt {attempt} of {task['max_attempts']} failed: {message}; "
                    f"retrying in {delay:g} s",
                    "runner_id": None,
                }
                return self._record(
                    task_id, attempt, values, kind=kind, delay=delay, as_="retrying"
                )
            log.exception("task %s (%s) failed", task_id, kind.name)
            return self._record(task_id, attempt, failed(message))
        values = finished(TaskStatus.SUCCEEDED, None)
        values.update(progress=100, result=result)
        return self._record(task_id, attempt, values)

    # -- recording -------------------------------------------------------------------------

    def _progress(self, task_id: int, attempt: int, percent: int) -> dict[str, Any] | None:
        def change(session: Session) -> dict[str, Any] | None:
            task = self._leased(session, task_id, attempt)
            if task is None:
                return None
            task.progress = percent
            session.flush()
            return task.to_dict()

        data = call_in_session(self.flask_app, change)
        if data is not None:
            self._publish(data)
        return data

    def _record(
        self,
        task_id: int,
        attempt: int,
        values: dict[str, Any],
        *,
        kind: TaskKind | None = None,
        delay: float | None = None,
        as_: str | None = None,
    ) -> str:
        """Write ``values`` if this runner still holds the lease for ``attempt``.

        With ``kind`` and ``delay``, the task is handed back to the backend in
        the same unit of work (a retry, or a requeue at shutdown).
        """
        after: list[AfterCommit] = []

        def change(session: Session) -> dict[str, Any] | None:
            after.clear()
            task = self._leased(session, task_id, attempt)
            if task is None:
                return None
            for name, value in values.items():
                setattr(task, name, value)
            session.flush()
            if kind is not None and delay is not None:
                callback = self.backend.dispatch(task, kind, delay)
                if callback is not None:
                    after.append(callback)
            return task.to_dict()

        data = call_in_session(self.flask_app, change)
        if data is None:
            log.warning("task %s attempt %d: lease lost; its outcome is dropped", task_id, attempt)
            return "lease-lost"
        # Published before the hand-over (a retry's resubmission): the next attempt's
        # events must reach subscribers after this one, or a page would end on "queued".
        self._publish(data)
        for callback in after:
            callback()
        return as_ or str(data["status"])

    def _leased(self, session: Session, task_id: int, attempt: int) -> Task | None:
        return session.scalars(
            select(Task)
            .where(
                Task.id == task_id,
                Task.status == TaskStatus.RUNNING.value,
                Task.runner_id == self.runner_id,
                Task.attempts == attempt,
            )
            .with_for_update()
        ).one_or_none()

    def refresh_leases(self) -> int:
        """Refresh the lease of every attempt running in this process, in one UPDATE.

        Only the attempts actually running here: a task whose thread was lost
        (e.g. interrupted by a hard time limit while recording) is not kept
        alive, so its lease goes stale and it is taken over.

        :returns: how many rows were refreshed.
        """
        active = self.active
        if not active:
            return 0

        def refresh(session: Session) -> int:
            result = session.execute(
                update(Task)
                .where(
                    Task.id.in_(active),
                    Task.runner_id == self.runner_id,
                    Task.status == TaskStatus.RUNNING.value,
                )
                .values(**lease_values(self.stale_after))
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

        return call_in_session(self.flask_app, refresh)

    def _publish(self, data: dict[str, Any]) -> None:
        self.events.publish({"type": "task", "task": data})


def finished(status: TaskStatus, error: str | None) -> dict[str, Any]:
    """Column values of a task reaching the final ``status`` now."""
    return {"status": status.value, "error": error, "finished_at": utcnow()}


def failed(reason: str) -> dict[str, Any]:
    """Column values of a task recorded ``failed`` now, for ``reason``."""
    return finished(TaskStatus.FAILED, reason)


def died_error(attempts: int, max_attempts: int) -> str:
    """The ``error`` of a task failed because its runners kept dying."""
    return (
        f"its worker stopped responding during attempt {attempts} of {max_attempts} "
        "(killed, or lost its database connection); no attempts left"
    )


def _finish(task: Task, status: TaskStatus, *, error: str | None) -> None:
    for name, value in finished(status, error).items():
        setattr(task, name, value)
