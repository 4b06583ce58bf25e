"""Native async JSON endpoints over the same models the Flask side uses."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.tasks.service import add_note, count_by_status, list_notes, parse_task_id
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
