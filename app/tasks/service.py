"""Creating and reading tasks: the operations both the HTML pages and the API use."""

from __future__ import annotations

from typing import Any

from flask import current_app
from pydantic import ValidationError
from sqlalchemy import func, select

from app.extensions import db
from app.tasks.kinds import KINDS
from app.tasks.models import Task, TaskStatus
from app.tasks.runner import TaskRunner


class InvalidTask(ValueError):
    """The request to create a task is invalid.

    :param fields: problems by field path (``"kind"``, ``"params.steps"``), each
        a short message; shown to users and returned by the API.
    """

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


def validate_task(kind: Any, params: Any) -> dict[str, Any]:
    """Check ``kind`` and ``params`` and return the params with defaults filled in.

    :param kind: the kind's name, a ``str`` among :data:`app.tasks.kinds.KINDS`.
    :param params: a ``dict`` of the kind's parameters (missing ones take defaults).
    :raises InvalidTask: naming every invalid field.
    """
    if not isinstance(kind, str) or kind not in KINDS:
        raise InvalidTask({"kind": f"must be one of: {', '.join(sorted(KINDS))}"})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise InvalidTask({"params": "must be an object"})
    try:
        model = KINDS[kind].params_model.model_validate(params)
    except ValidationError as error:
        raise InvalidTask(
            {".".join(["params", *map(str, item["loc"])]): item["msg"] for item in error.errors()}
        ) from None
    return model.model_dump()


def create_task(kind: Any, params: Any) -> Task:
    """Validate, store and submit a new task; return it (status ``queued``).

    Runs inside a Flask request or app context. The row is committed before the
    task is submitted, so the worker always finds it.

    :raises InvalidTask: if ``kind`` or ``params`` is invalid; nothing is written.
    """
    clean = validate_task(kind, params)
    task = Task(kind=kind, params=clean, status=TaskStatus.QUEUED.value, progress=0)
    db.session.add(task)
    db.session.commit()
    runner: TaskRunner = current_app.extensions["task_runner"]
    runner.submit(task.id)
    return task


def list_tasks(status: str | None = None, limit: int = 50) -> list[Task]:
    """Return up to ``limit`` tasks, newest first, optionally of one ``status``."""
    query = select(Task).order_by(Task.id.desc()).limit(limit)
    if status:
        query = query.where(Task.status == status)
    return list(db.session.scalars(query))


def count_by_status(session: Any = None) -> dict[str, int]:
    """Return ``{status: count}`` for every status (zero included).

    :param session: the session to use; default ``db.session``.
    """
    session = session or db.session
    rows = session.execute(select(Task.status, func.count()).group_by(Task.status))
    counts = {status.value: 0 for status in TaskStatus}
    counts.update({status: count for status, count in rows})
    return counts
