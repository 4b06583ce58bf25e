"""Routes of the tasks JSON API ported from Flask (:mod:`app.tasks.api`) to native handlers.

The worked example of ``docs/migration.md``. Each handler here answers like
the Flask view it shadows -- same status, ``Content-Type`` and JSON body,
errors included -- which ``tests/tasks/test_parity.py`` checks against the Flask
view still registered behind it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.tasks.models import Task
from app.tasks.service import TaskNotFound, parse_task_id
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

    Flask's rule ``/api/tasks/<task_id:task_id>`` becomes ``/api/tasks/([^/]+)``:
    Tornado passes the segment as a string, and
    :func:`~app.tasks.service.parse_task_id` turns it into the id -- a segment
    that is not ASCII digits, or an id outside ``1..2**31-1``, is a 404 ``no such
    task`` before any query, as
    Flask's converter answers it. The query runs on the shared executor
    through :meth:`run_in_session`; the IOLoop only awaits it. ``HEAD`` and
    ``OPTIONS`` come from :class:`BaseHandler`, as Flask answers them for
    every rule.

    :raises app.tasks.service.TaskNotFound: unknown or out-of-range id (404).
    """

    # A shadow comparison (SHADOW_ROUTES) leaves out Vary: every Flask response says
    # "Vary: Cookie" (Flask-Login looks at the session); this handler rightly does not.
    shadow_ignore_headers = ("vary",)
    # ... and the progress of a running task, which moves between the two runs.
    shadow_ignore = ("progress",)

    async def get(self, task_id: str) -> None:
        """``GET``: the task as ``Task.to_dict()``, 200."""
        parsed = parse_task_id(task_id)
        data = await self.run_in_session(lambda session: task_data(session, parsed))
        self.write_json(data)
