"""Native async JSON endpoints over the same models and task API the Flask side uses."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.tasks.api import IDEMPOTENCY_KEY_HEADER, enqueued_answer, idempotency_key
from app.tasks.client import task_client
from app.tasks.service import NewTask, add_note, count_by_status, list_notes, parse_task_id
from app.validation import parse
from tornado_handlers.base import BaseHandler


class TaskStatsHandler(BaseHandler):
    """``GET /api/stats``: ``{"tasks": {status: count}, "total": n}``.

    The query runs on the shared executor through :meth:`run_in_session`;
    the IOLoop thread only awaits it.
    """

    async def get(self) -> None:
        def query(session: Session) -> dict[str, int]:
            return count_by_status(session)

        counts = await self.run_in_session(query)
        self.write_json({"tasks": counts, "total": sum(counts.values())})


class TaskNotesHandler(BaseHandler):
    """``GET|POST /api/v2/tasks/<id>/notes``: notes, written natively.

    The same operations as Flask's ``/api/tasks/<id>/notes``
    (:func:`app.tasks.service.add_note`, :func:`~app.tasks.service.list_notes`)
    with the same errors: 404 for an unknown task or an id outside
    ``1..2**31-1`` (checked first, as Flask's ``<task_id:...>`` rule does),
    400 for a body that is not a JSON object, 422 naming the field, 409 when
    the write conflicts -- and then nothing is written.

    CSRF-exempt, as Flask's ``/api/tasks`` blueprint is (``csrf.exempt``): the
    example's JSON API acts on no login or session.
    """

    csrf_exempt = True

    async def get(self, task_id: str) -> None:
        """``GET``: ``{"notes": [...]}``, oldest first."""
        parsed = parse_task_id(task_id)
        notes = await self.run_in_session(lambda session: list_notes(session, parsed))
        self.write_json({"notes": notes})

    async def post(self, task_id: str) -> None:
        """``POST`` ``{"body": "..."}``: 201 and the new note."""
        parsed = parse_task_id(task_id)
        body = self.json_body()
        note = await self.run_in_session(lambda session: add_note(session, parsed, body))
        self.write_json(note, status=201)


class TaskEnqueueHandler(BaseHandler):
    """``POST /api/v2/tasks``: enqueue a task from a native handler.

    The twin of Flask's ``POST /api/tasks`` (:func:`app.tasks.api.create`):
    the same body ``{"kind", "params", "name"}``, the same ``Idempotency-Key``
    header, the same answers -- 201 with ``Location`` (the task's Flask URL),
    200 with ``Idempotent-Replayed: true`` for a replay, 400, 409, 413, 422,
    and 503 with ``Retry-After`` when the queue is down. The enqueue (database
    and, with the queue backend, Redis) runs on the shared executor; the
    IOLoop only awaits it.

    CSRF-exempt, as Flask's ``/api/tasks`` blueprint is.
    """

    csrf_exempt = True

    async def post(self) -> None:
        """``POST``: enqueue; 201 (or 200 for a replay) and the task."""
        new = parse(NewTask, self.json_body())
        key = idempotency_key(self.request.headers.get_list(IDEMPOTENCY_KEY_HEADER))
        client = task_client(self.flask_app)
        enqueued = await self.run_in_executor(
            client.enqueue, new.kind, new.params, name=new.name, idempotency_key=key
        )
        location = self.flask_url("tasks_api.detail", task_id=enqueued.id)
        body, status, headers = enqueued_answer(enqueued, location)
        for name, value in headers.items():
            self.set_header(name, value)
        self.write_json(body, status=status)


class TaskCancelHandler(BaseHandler):
    """``POST /api/v2/tasks/<id>/cancel``: the twin of Flask's ``POST /api/tasks/<id>/cancel``.

    200 and the task (``cancelled``, or ``running`` with ``cancel_requested``);
    409 if it already finished; 404 for an unknown or out-of-range id.
    CSRF-exempt, as Flask's API is.
    """

    csrf_exempt = True

    async def post(self, task_id: str) -> None:
        """``POST``: cancel the task."""
        parsed = parse_task_id(task_id)
        data = await self.run_in_executor(task_client(self.flask_app).cancel, parsed)
        self.write_json(data)


class TaskRetryHandler(BaseHandler):
    """``POST /api/v2/tasks/<id>/retry``: the twin of Flask's ``POST /api/tasks/<id>/retry``.

    200 and the task, ``queued`` again; 409 unless it is ``failed``,
    ``interrupted`` or ``cancelled``; 404 for an unknown id; 503 with
    ``Retry-After`` when the queue is down. CSRF-exempt, as Flask's API is.
    """

    csrf_exempt = True

    async def post(self, task_id: str) -> None:
        """``POST``: queue the task again."""
        parsed = parse_task_id(task_id)
        data = await self.run_in_executor(task_client(self.flask_app).retry, parsed)
        self.write_json(data)
