"""Task operations shared by the HTML pages, the Flask API and native handlers.

Functions that take a ``session`` work with any SQLAlchemy
:class:`~sqlalchemy.orm.Session`: Flask views pass ``db.session``, native
handlers the session :meth:`tornado_handlers.base.BaseHandler.run_in_session`
gives them. They flush but do not commit: the caller's unit of work does.
"""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.blueprints import BlueprintSetupState
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import func, select, update
from werkzeug.exceptions import NotFound
from werkzeug.routing import IntegerConverter, Map

from app.database import AnySession
from app.extensions import db
from app.tasks.client import TaskName, task_client
from app.tasks.client import TaskNotFound as TaskNotFound  # re-exported: the id checks live here
from app.tasks.models import (
    NOTE_MAX_LENGTH,
    Task,
    TaskNote,
    TaskStatus,
)
from app.validation import PlainText, parse

TASK_ID_MIN = 1
"""The smallest valid task id."""

TASK_ID_MAX = 2**31 - 1
"""The largest valid task id: the portable SQL ``INTEGER`` range.

PostgreSQL's ``integer`` stops here (a larger literal is
``NumericValueOutOfRange``) and SQLite's driver overflows past 2**63 - 1, so
an id outside ``TASK_ID_MIN..TASK_ID_MAX`` never reaches the database: both
sides answer it like an unknown task (:func:`parse_task_id`,
:class:`TaskIdConverter`).
"""

RECENT_TASKS = 50
"""How many tasks the task list page shows (newest first); its live list keeps that length."""

NO_SUCH_TASK = "no such task"
"""The ``error`` of the 404 body for an unknown (or out-of-range) task id."""


def parse_task_id(text: str) -> int:
    """Return the task id spelled by ``text`` (a native route's digits group).

    The one check native handlers make before any query; Flask's rules make
    the same one with :class:`TaskIdConverter`.

    :param text: the path segment the native route's ``TASK_ID`` group ``([^/]+)``
        captures: any text, so a bad id (``-1``, ``abc``) reaches this check and
        gets the API's 404, not a fall-through to Flask's generic one (leading zeros
        allowed: ``"007"`` is 7).
    :returns: an ``int`` in ``TASK_ID_MIN..TASK_ID_MAX``.
    :raises TaskNotFound: if ``text`` is not ASCII digits spelling a number in that range.
    """
    if not (text.isascii() and text.isdigit()):  # int() would take " 7", "+7", "1_0"
        raise TaskNotFound(text)
    digits = text.lstrip("0") or "0"
    if len(digits) > len(str(TASK_ID_MAX)):
        # Out of range, and int() refuses over 4300 digits (ValueError: a 500).
        raise TaskNotFound(text[:20] + "...")
    task_id = int(digits)
    if not TASK_ID_MIN <= task_id <= TASK_ID_MAX:
        raise TaskNotFound(task_id)
    return task_id


class TaskIdConverter(IntegerConverter):
    """Werkzeug's ``int`` converter with ``min=TASK_ID_MIN, max=TASK_ID_MAX``, as ``<task_id:...>``.

    Written ``<task_id:task_id>`` in a rule (registered by
    :func:`use_task_id_converter`). It differs from ``<int(min=1,
    max=2147483647):task_id>`` in one way: any segment in the id's place that is
    not a valid id -- out of range, ``-1``, ``abc`` -- is a 404 ``no such task``,
    what the API answers for an unknown task and what the native handlers
    answer for the same URL, instead of Werkzeug's "the requested URL was not
    found" (a routing 404 carries no hint that a *task* was missing). So the
    rule takes any segment (``[^/]+``) and :meth:`to_python` judges it.
    """

    def __init__(self, map: Map) -> None:
        super().__init__(map, min=TASK_ID_MIN, max=TASK_ID_MAX)
        self.regex = r"[^/]+"

    def to_python(self, value: str) -> int:
        """Return the id; anything else raises ``NotFound(description=NO_SUCH_TASK)``.

        :param value: the URL segment, e.g. ``"42"``, ``"007"``, ``"-1"``.
        :raises werkzeug.exceptions.NotFound: stops the URL matching (Flask
            stores it as the request's routing exception; :mod:`app.errors`
            answers it 404 with ``{"error": "no such task"}`` under ``/api/``).
        """
        try:
            return parse_task_id(value)
        except TaskNotFound:
            raise NotFound(description=NO_SUCH_TASK) from None


def use_task_id_converter(state: BlueprintSetupState) -> None:
    """Register :class:`TaskIdConverter` as ``task_id`` on the app a blueprint is registered on.

    Use as ``blueprint.record_once(use_task_id_converter)`` *before* the
    blueprint's routes, so the converter exists when its rules are added.

    :param state: the :class:`flask.blueprints.BlueprintSetupState`.
    """
    state.app.url_map.converters.setdefault("task_id", TaskIdConverter)


class NewTask(BaseModel):
    """The body of ``POST /api/tasks``: ``{"kind": ..., "params": {...}, "name": ...}``.

    Strict (no coercion): ``"name": 5`` is a 422, not ``"5"``. ``"params":
    null`` is ``{}`` (the kind's defaults), as leaving it out is. The name is
    stripped, as a note's body is, so a blank one is refused; it is plain text
    (:data:`app.validation.PlainText`: no control characters but tab and newline).
    """

    model_config = ConfigDict(extra="forbid", strict=True)
    kind: str
    params: dict[str, Any] = Field(default_factory=dict)
    name: TaskName | None = None

    @field_validator("params", mode="before")
    @classmethod
    def _null_params_are_empty(cls, value: Any) -> Any:
        return {} if value is None else value


class NewNote(BaseModel):
    """The body of a note: ``{"body": "..."}``, 1 to :data:`NOTE_MAX_LENGTH` characters.

    Strict (no coercion), as the task params models are.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)
    body: PlainText = Field(min_length=1, max_length=NOTE_MAX_LENGTH)


def create_task(
    kind: Any, params: Any, name: str | None = None, *, idempotency_key: str | None = None
) -> Task:
    """Enqueue a new task through the app's :class:`~app.tasks.client.TaskClient`; return it.

    Runs inside a Flask request or app context (the pages and the Flask API
    call it). The task is returned as a detached :class:`Task` (``queued``,
    or what an idempotency key gave back).

    :raises app.validation.InvalidInput: if ``kind``, ``params`` or ``name`` is invalid.
    :raises app.tasks.client.ParamsTooLarge: params too large (413).
    :raises app.tasks.client.IdempotencyKeyReused: key used for other arguments (409).
    :raises app.tasks.client.TaskBackendUnavailable: the queue is unreachable (503).
    :raises sqlalchemy.exc.IntegrityError: if a task named ``name`` exists (409).
        Nothing is written or submitted in any of these cases.
    """
    enqueued = task_client(current_app).enqueue(
        kind, params, name=name, idempotency_key=idempotency_key
    )
    task = db.session.get(Task, enqueued.id)
    if task is None:  # deleted in between
        raise TaskNotFound(enqueued.id)
    return task


def list_tasks(status: str | None = None, limit: int | None = None) -> list[Task]:
    """Return up to ``limit`` tasks (default :data:`RECENT_TASKS`), newest first,
    optionally of one ``status``."""
    if limit is None:
        limit = RECENT_TASKS
    query = select(Task).order_by(Task.id.desc()).limit(limit)
    if status:
        query = query.where(Task.status == status)
    return list(db.session.scalars(query))


def count_by_status(session: AnySession | None = None) -> dict[str, int]:
    """Return ``{status: count}`` for every status (zero included).

    :param session: the session to use; default ``db.session``.
    """
    session = session or db.session
    rows = session.execute(select(Task.status, func.count()).group_by(Task.status))
    counts = {status.value: 0 for status in TaskStatus}
    counts.update({status: count for status, count in rows})
    return counts


def add_note(session: AnySession, task_id: int, data: Any) -> dict[str, Any]:
    """Append a note to task ``task_id`` and count it, as one unit of work.

    Inserts the note, then increments ``tasks.note_count`` with an atomic
    ``UPDATE ... SET note_count = note_count + 1`` (no read-modify-write race
    between threads or processes). If the second statement fails -- the task
    is at :data:`~app.tasks.models.MAX_NOTES_PER_TASK` -- the caller's rollback
    removes the note too: both or neither.

    :param data: the decoded JSON body, ``{"body": str}``.
    :returns: the new note as data.
    :raises InvalidInput: if ``data`` is not a valid note.
    :raises TaskNotFound: if the task does not exist.
    :raises sqlalchemy.exc.IntegrityError: on the notes cap or if the task was
        deleted meanwhile (foreign key); roll back.
    """
    note_in = parse(NewNote, data)
    if session.get(Task, task_id) is None:
        raise TaskNotFound(task_id)
    note = TaskNote(task_id=task_id, body=note_in.body)
    session.add(note)
    session.flush()
    session.execute(update(Task).where(Task.id == task_id).values(note_count=Task.note_count + 1))
    return note.to_dict()


def list_notes(session: AnySession, task_id: int) -> list[dict[str, Any]]:
    """Return task ``task_id``'s notes, oldest first.

    :raises TaskNotFound: if the task does not exist.
    """
    if session.get(Task, task_id) is None:
        raise TaskNotFound(task_id)
    notes = session.scalars(
        select(TaskNote).where(TaskNote.task_id == task_id).order_by(TaskNote.id)
    )
    return [note.to_dict() for note in notes]
