"""The JSON API for tasks (``/api/tasks``), served by Flask.

Errors are JSON: ``{"error": message, "fields": {field: message}}`` with 400
for a body that is not a JSON object or nests too deeply, 422 for invalid
fields (the first ten, and ``"more": n`` counting the rest; docs/tasks.md, "What
the API accepts"), 404
``{"error": "no such task"}`` for an unknown task -- also for an id outside
``1..2**31-1``, which the ``<task_id:...>`` rules turn away before any query
(:class:`app.tasks.service.TaskIdConverter`; see :mod:`app.errors`) -- and
those of the task API (:mod:`app.tasks.client`): 413 for params over 64 KiB,
409 for a reused idempotency key or a cancel/retry the task's state does not
allow, 503 with ``Retry-After`` when the queue is down.

``POST /api/tasks``, ``/cancel`` and ``/retry`` have native twins under
``/api/v2/tasks`` (:mod:`tornado_handlers.tasks.handlers`) that answer with the
same statuses, headers and JSON; :func:`idempotency_key` and
:func:`enqueued_answer` are the parts both sides share.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from flask import Blueprint, abort, current_app, request, url_for

from app.extensions import csrf, db
from app.tasks.client import Enqueued, task_client
from app.tasks.models import Task, TaskStatus
from app.tasks.service import (
    NewTask,
    TaskNotFound,
    add_note,
    list_notes,
    list_tasks,
    use_task_id_converter,
)
from app.validation import InvalidInput, MalformedBody, decode_json_object, parse

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
"""The request header of an idempotent ``POST`` (IETF draft-ietf-httpapi-idempotency-key-header)."""

REPLAYED_HEADER = "Idempotent-Replayed"
"""The response header (``true``) of a ``POST`` whose idempotency key gave back an existing task."""

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

    ``name`` is optional and unique (a second task of that name is 409). An
    ``Idempotency-Key`` header makes the request safe to repeat: the first
    time the task is created (201); a repeat with the same key, kind, params
    and name gives back that same task (200, ``Idempotent-Replayed: true``);
    the key with other ones is 409.

    :returns: 201 (or 200 for a replay) with the task and a ``Location`` header.
    """
    new = parse(NewTask, json_object())
    key = idempotency_key(request.headers.getlist(IDEMPOTENCY_KEY_HEADER))
    enqueued = task_client(current_app).enqueue(
        new.kind, new.params, name=new.name, idempotency_key=key
    )
    return enqueued_answer(enqueued, url_for("tasks_api.detail", task_id=enqueued.id))


@blueprint.post("/<task_id:task_id>/cancel")
def cancel(task_id: int) -> dict[str, Any]:
    """``POST /api/tasks/<id>/cancel``: 200 and the task.

    A queued task is ``cancelled`` at once; a running one gets
    ``cancel_requested`` and stops at its next progress report. 409 if it
    already finished, 404 if there is no such task.
    """
    return task_client(current_app).cancel(task_id)


@blueprint.post("/<task_id:task_id>/retry")
def retry(task_id: int) -> dict[str, Any]:
    """``POST /api/tasks/<id>/retry``: 200 and the task, ``queued`` again with fresh attempts.

    Only a ``failed``, ``interrupted`` or ``cancelled`` task can be retried
    (409 otherwise); 503 with ``Retry-After`` if the queue is down (nothing changed).
    """
    return task_client(current_app).retry(task_id)


class RepeatedIdempotencyKey(ValueError):
    """The ``Idempotency-Key`` header came more than once (answered 400 on both sides).

    ``str(error)`` is the message.
    """


_LIST_MEMBER = re.compile(r'(?:[^",]|"(?:[^"\\]|\\.)*"?)+')
"""One member of a combined field value: commas inside a quoted string do not split it."""


def idempotency_key(headers: Sequence[str]) -> str | None:
    """Return the key an ``Idempotency-Key`` header carries, or ``None`` without the header.

    The header must come once: the key is one value (an sf-item), not a
    list. Repeated fields are combined with commas (RFC 9110 section 5.3),
    differently by each side (WSGI gives Flask one ``"k-a, k-b"``, Tornado
    joins with ``","``), so a combined value would be two different keys for
    the same request. Every value is therefore split at commas outside
    quoted strings, and more than one member is refused.

    The draft (draft-ietf-httpapi-idempotency-key-header, section 2) makes the
    value a Structured Field String, ``"8e03978e-..."`` (RFC 8941 section
    3.3.3); a bare token, as many clients send it, is taken as it is. Its
    length (1 to 255 characters) is checked by
    :meth:`app.tasks.client.TaskClient.enqueue`.

    :param headers: every value of the header as received, in order (none
        without the header): ``request.headers.getlist`` on Flask's side,
        ``request.headers.get_list`` on Tornado's.
    :raises RepeatedIdempotencyKey: the header came more than once, or
        carried a list (400).
    :raises InvalidInput: a quoted value that is not a valid sf-string (422,
        field ``idempotency_key``).
    """
    members = [m for header in headers for m in _LIST_MEMBER.findall(header)]
    if not headers:
        return None
    if len(headers) > 1 or len(members) > 1:
        raise RepeatedIdempotencyKey(
            f"the {IDEMPOTENCY_KEY_HEADER} header must be sent once, with one key"
        )
    value = headers[0].strip(" \t")
    if not value.startswith('"'):
        return value
    key: list[str] = []
    chars = iter(value[1:])
    for char in chars:
        if char == "\\":
            escaped = next(chars, "")
            if escaped not in ('"', "\\"):
                break
            key.append(escaped)
        elif char == '"':
            if next(chars, None) is None:
                return "".join(key)
            break
        elif not " " <= char <= "~":
            break
        else:
            key.append(char)
    raise InvalidInput({"idempotency_key": "must be a token or a quoted string (RFC 8941)"})


def enqueued_answer(
    enqueued: Enqueued, location: str
) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Return ``(body, status, headers)`` answering an enqueue, as both sides send it.

    :param enqueued: what :meth:`app.tasks.client.TaskClient.enqueue` returned.
    :param location: the task's URL (``Location``, RFC 9110 section 10.2.2).
    :returns: 201 for a new task; 200 with ``Idempotent-Replayed: true`` when
        an idempotency key gave back an existing one.
    """
    headers = {"Location": location}
    if enqueued.created:
        return enqueued.task, 201, headers
    headers[REPLAYED_HEADER] = "true"
    return enqueued.task, 200, headers


def json_object() -> dict[str, Any]:
    """The request body as a JSON object, read as the native side reads it.

    Only with a JSON ``Content-Type`` (``request.is_json``), decoded by
    :func:`app.validation.decode_json_object` (its depth checked first).

    :raises app.validation.MalformedBody: no JSON object, or one nested too deeply (400).
    """
    if not request.is_json:
        raise MalformedBody("the body must be a JSON object")
    return decode_json_object(request.get_data(cache=True))


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
