"""The JSON API for tasks (``/api/tasks``), served by Flask.

Errors are JSON: ``{"error": message, "fields": {field: message}}`` with 400
for a body that is not a JSON object, 422 for invalid fields, 404
``{"error": "no such task"}`` for an unknown task -- also for an id outside
``1..2**31-1``, which the ``<task_id:...>`` rules turn away before any query
(:class:`app.tasks.service.TaskIdConverter`; see :mod:`app.errors`).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, request, url_for

from app.extensions import csrf, db
from app.tasks.models import Task, TaskStatus
from app.tasks.service import (
    NewTask,
    TaskNotFound,
    add_note,
    create_task,
    list_notes,
    list_tasks,
    use_task_id_converter,
)
from app.validation import parse

blueprint = Blueprint("tasks_api", __name__, url_prefix="/api/tasks")
blueprint.record_once(use_task_id_converter)  # before the rules that use <task_id:...>
csrf.exempt(blueprint)


@blueprint.get("")
def index() -> dict[str, Any]:
    """``GET /api/tasks[?status=...&limit=N]``: newest first, at most 200."""
    status = request.args.get("status")
    if status is not None and status not in set(TaskStatus):
        abort(422, description=f"status must be one of: {', '.join(TaskStatus)}")
    limit = request.args.get("limit", 50, type=int)
    tasks = list_tasks(status=status, limit=max(1, min(limit, 200)))
    return {"tasks": [task.to_dict() for task in tasks]}


@blueprint.post("")
def create() -> tuple[dict[str, Any], int, dict[str, str]]:
    """``POST /api/tasks`` with ``{"kind": "sleep", "params": {"steps": 5}, "name": "n"}``.

    ``name`` is optional and unique (a second task of that name is 409).

    :returns: 201 with the new task and a ``Location`` header.
    """
    new = parse(NewTask, json_object())
    task = create_task(new.kind, new.params, new.name)
    location = url_for("tasks_api.detail", task_id=task.id)
    return task.to_dict(), 201, {"Location": location}


def json_object() -> dict[str, Any]:
    """The request body as a JSON object; 400 if it is not one."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, description="the body must be a JSON object")
    return body


@blueprint.get("/<task_id:task_id>/notes")
def notes(task_id: int) -> dict[str, Any]:
    """``GET /api/tasks/<id>/notes``: the task's notes, oldest first."""
    return {"notes": list_notes(db.session, task_id)}


@blueprint.post("/<task_id:task_id>/notes")
def add(task_id: int) -> tuple[dict[str, Any], int]:
    """``POST /api/tasks/<id>/notes`` with ``{"body": "..."}``: 201 and the note.

    The note and the task's ``note_count`` are written in one transaction.
    """
    note = add_note(db.session, task_id, json_object())
    db.session.commit()
    return note, 201


@blueprint.get("/<task_id:task_id>")
def detail(task_id: int) -> dict[str, Any]:
    """``GET /api/tasks/<id>``: one task."""
    task = db.session.get(Task, task_id)
    if task is None:
        raise TaskNotFound(task_id)
    return task.to_dict()
