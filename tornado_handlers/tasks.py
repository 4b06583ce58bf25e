"""Native async JSON endpoints over the same models the Flask side uses."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.tasks.service import count_by_status
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
