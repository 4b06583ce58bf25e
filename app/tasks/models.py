"""The ``Task`` model: one background job, its progress and its result."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, DateTime, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db


def utcnow() -> datetime:
    """Return the current time as an aware UTC :class:`~datetime.datetime`."""
    return datetime.now(UTC)


class TaskStatus(enum.StrEnum):
    """Life cycle of a task: ``queued`` -> ``running`` -> one of the final states.

    ``interrupted`` is set at start-up for tasks that a previous process left
    ``queued`` or ``running`` when it died (see :func:`app.tasks.runner.recover_interrupted`).
    """

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"

    @property
    def is_final(self) -> bool:
        """Whether the task will not change any more."""
        return self not in (TaskStatus.QUEUED, TaskStatus.RUNNING)


class Task(db.Model):  # type: ignore[name-defined]
    """A background job run on the shared executor.

    ``params`` and ``result`` are JSON objects whose shape depends on ``kind``
    (see :mod:`app.tasks.kinds`); ``progress`` is a percentage, 0 to 100.
    """

    __tablename__ = "tasks"
    __table_args__ = (
        CheckConstraint("progress >= 0 AND progress <= 100", name="progress_percent"),
        CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'interrupted')",
            name="status_known",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=TaskStatus.QUEUED.value, index=True)
    progress: Mapped[int] = mapped_column(default=0)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)

    def to_dict(self) -> dict[str, Any]:
        """Return the task as JSON-ready data (times as ISO 8601 strings).

        This is the one representation used by the JSON API, the native
        handlers and the WebSocket events.
        """
        return {
            "id": self.id,
            "kind": self.kind,
            "params": self.params,
            "status": self.status,
            "progress": self.progress,
            "result": self.result,
            "error": self.error,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
        }

    def __repr__(self) -> str:
        return f"<Task {self.id} {self.kind} {self.status} {self.progress}%>"


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:  # SQLite hands back naive datetimes; they were stored as UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()
