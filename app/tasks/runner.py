"""Run tasks on the shared executor and record what happens to them.

Every state change is its own short unit of work (:func:`app.database.call_in_session`),
so a long task never holds a database session or a transaction open, and each
change is published to :class:`app.tasks.events.TaskEvents` after it commits.
"""

from __future__ import annotations

import logging
from concurrent.futures import Executor, Future
from typing import Any

from flask import Flask
from sqlalchemy import update
from sqlalchemy.orm import Session

from app.database import call_in_session
from app.tasks.events import TaskEvents
from app.tasks.kinds import KINDS
from app.tasks.models import Task, TaskStatus, utcnow

log = logging.getLogger(__name__)


class TaskRunner:
    """Submits tasks to ``executor`` and runs them with progress reporting.

    :param flask_app: the app whose database records the tasks.
    :param executor: the shared thread pool; a running task occupies one of
        its threads for its whole duration.
    :param events: where each committed state change is published.
    """

    def __init__(self, flask_app: Flask, executor: Executor, events: TaskEvents) -> None:
        self.flask_app = flask_app
        self.executor = executor
        self.events = events

    def submit(self, task_id: int) -> Future[None]:
        """Queue the committed task ``task_id`` to run on the executor.

        :raises RuntimeError: if the executor has been shut down.
        """
        return self.executor.submit(self.run, task_id)

    def run(self, task_id: int) -> None:
        """Run task ``task_id`` to its end in the calling thread.

        Marks it ``running``, calls its kind's function, and records
        ``succeeded`` with the result or ``failed`` with the error. Never raises
        for a failing task: the failure is data.
        """
        task = self._update(task_id, status=TaskStatus.RUNNING.value, started_at=utcnow())
        kind = KINDS[task["kind"]]
        last_percent = 0

        def report(percent: int) -> None:
            nonlocal last_percent
            percent = max(0, min(100, int(percent)))
            if percent != last_percent:
                last_percent = percent
                self._update(task_id, progress=percent)

        try:
            params = kind.params_model.model_validate(task["params"])
            result = kind.run(params, report)
        except Exception as error:
            log.exception("task %s (%s) failed", task_id, kind.name)
            self._update(
                task_id,
                status=TaskStatus.FAILED.value,
                error=f"{type(error).__name__}: {error}",
                finished_at=utcnow(),
            )
        else:
            self._update(
                task_id,
                status=TaskStatus.SUCCEEDED.value,
                progress=100,
                result=result,
                finished_at=utcnow(),
            )

    def _update(self, task_id: int, **values: Any) -> dict[str, Any]:
        def change(session: Session) -> dict[str, Any]:
            task = session.get_one(Task, task_id)
            for name, value in values.items():
                setattr(task, name, value)
            session.flush()
            return task.to_dict()

        data = call_in_session(self.flask_app, change)
        self.events.publish({"type": "task", "task": data})
        return data


def recover_interrupted(flask_app: Flask) -> int:
    """Mark tasks a previous process left ``queued`` or ``running`` as ``interrupted``.

    Call once at server start, before any task is submitted: in a single
    process server, such a task has nobody left to finish it.

    :returns: how many tasks were marked.
    """

    def mark(session: Session) -> int:
        result = session.execute(
            update(Task)
            .where(Task.status.in_([TaskStatus.QUEUED.value, TaskStatus.RUNNING.value]))
            .values(
                status=TaskStatus.INTERRUPTED.value,
                error="interrupted: the server stopped before the task finished",
                finished_at=utcnow(),
            )
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    count = call_in_session(flask_app, mark)
    if count:
        log.warning("marked %d unfinished task(s) from a previous run as interrupted", count)
    return count
