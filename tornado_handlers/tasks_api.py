"""Routes of the tasks JSON API ported from Flask (:mod:`app.tasks.api`) to native handlers.

The worked example of ``docs/migration.md``. Each handler here answers like
the Flask view it shadows -- same status, ``Content-Type`` and JSON body,
errors included -- which ``tests/test_parity.py`` checks against the Flask
view still registered behind it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.tasks.models import Task
from app.tasks.service import TaskNotFound
from tornado_handlers.base import BaseHandler


def task_data(session: Session, task_id: int) -> dict[str, Any]:
    """Return ``Task.to_dict()`` of task ``task_id`` (blocking: run it on the executor).

    :raises app.tasks.service.TaskNotFound: if there is no such task (answered
        404 ``{"error": "no such task"}`` by both sides, :func:`app.errors.error_response`).
    """
    task = session.get(Task, task_id)
    if task is None:
        raise TaskNotFound(task_id)
    return task.to_dict()


class TaskDetailHandler(BaseHandler):
    """``GET /api/tasks/<id>``: one task, ported from Flask's ``tasks_api.detail``.

    Flask's rule ``/api/tasks/<int:task_id>`` becomes ``/api/tasks/([0-9]+)``:
    Tornado passes the digits as a string. The query runs on the shared
    executor through :meth:`run_in_session`; the IOLoop only awaits it.

    ``HEAD`` is implemented too, because Flask answers ``HEAD`` for every
    ``GET`` rule (Tornado answers 405 unless the handler defines ``head``).
    """

    async def get(self, task_id: str) -> None:
        data = await self.run_in_session(lambda session: task_data(session, int(task_id)))
        self.write_json(data)

    async def head(self, task_id: str) -> None:
        await self.get(task_id)
