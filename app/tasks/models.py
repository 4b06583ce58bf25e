"""The ``Task`` model: one background job, its progress and its result."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, DateTime, ForeignKey, String, Text
from sqlalchemy import false as sa_false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.database import utcnow
from app.extensions import db

NAME_MAX_LENGTH = 100
"""Longest task name, in characters."""

RUNNER_ID_MAX_LENGTH = 255
"""Longest :attr:`Task.runner_id`, in characters."""

NOTE_MAX_LENGTH = 2000
"""Longest note body, in characters."""

MAX_NOTES_PER_TASK = 1000
"""How many notes one task may have (enforced by the database)."""

IDEMPOTENCY_KEY_MAX_LENGTH = 255
"""Longest :attr:`Task.idempotency_key`, in characters."""


class TaskStatus(enum.StrEnum):
    """Life cycle of a task: ``queued`` -> ``running`` -> one of the final states.

    A failed attempt with attempts left goes back to ``queued`` (with the
    error of that attempt) until it is retried. ``interrupted`` is set, with
    the in-process backend only, when the server stops before the task
    finished: by the stopping server itself (graceful shutdown), or at
    start-up for tasks whose runner stopped sending heartbeats (see
    :func:`app.tasks.runner.recover_interrupted`); the queue backend puts such
    a task back in the queue instead. ``cancelled`` follows a cancel request
    (at once for a queued task, at the next ``report()`` for a running one).
    ``failed``, ``interrupted`` and ``cancelled`` tasks can be retried
    (:meth:`app.tasks.client.TaskClient.retry`).
    """

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    CANCELLED = "cancelled"


FINAL_STATUSES = frozenset(
    {TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.INTERRUPTED, TaskStatus.CANCELLED}
)
"""Statuses a task does not leave on its own (only a retry takes it back to ``queued``)."""

RETRYABLE_STATUSES = frozenset({TaskStatus.FAILED, TaskStatus.INTERRUPTED, TaskStatus.CANCELLED})
"""Statuses :meth:`app.tasks.client.TaskClient.retry` accepts."""


class Task(db.Model):  # type: ignore[name-defined]
    """A background job run on the shared executor.

    ``params`` and ``result`` are JSON objects whose shape depends on ``kind``
    (see :mod:`app.tasks.kinds`); ``progress`` is a percentage, 0 to 100.
    ``name`` is optional and unique: a client can name a task to find it again
    (a second task of the same name is a conflict). ``note_count`` counts the
    task's :class:`TaskNote` rows, kept in step in the same transaction, and
    is capped at :data:`MAX_NOTES_PER_TASK` by a CHECK constraint.

    ``runner_id`` and ``heartbeat_at`` are the task's lease: which server
    process runs it (``host:pid:random``, see
    :attr:`app.tasks.runner.TaskRunner.runner_id`) and when that process last
    said it is alive (UTC). Both are ``None`` until a runner takes the task.
    ``lease_expires_at`` is when the lease runs out unless refreshed, set by
    its owner from *its own* ``TASK_HEARTBEAT_INTERVAL`` (3 intervals), so
    processes configured with different intervals judge each other's leases
    alike (a row without it is judged by ``heartbeat_at`` and the reader's
    interval).

    ``attempts`` counts the attempts started (a worker that stopped gracefully
    gives its attempt back); ``max_attempts`` bounds them (copied from the
    kind at enqueue: :attr:`app.tasks.kinds.TaskKind.max_attempts`). A running
    task is only ever recorded by the runner holding the lease *for that
    attempt* (``runner_id`` and ``attempts`` both match), so a late writer --
    a worker presumed dead that was only slow -- cannot overwrite the outcome
    of the attempt that replaced it. ``idempotency_key`` is unique: enqueueing
    twice with one key gives one task. ``cancel_requested`` asks a running
    task to stop at its next ``report()``.
    """

    __tablename__ = "tasks"
    __table_args__ = (
        CheckConstraint("progress >= 0 AND progress <= 100", name="progress_percent"),
        CheckConstraint(
            f"note_count >= 0 AND note_count <= {MAX_NOTES_PER_TASK}", name="note_count_range"
        ),
        CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'interrupted', 'cancelled')",
            name="status_known",
        ),
        CheckConstraint("attempts >= 0 AND attempts <= max_attempts", name="attempts_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str | None] = mapped_column(String(NAME_MAX_LENGTH), unique=True, default=None)
    kind: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=TaskStatus.QUEUED.value, index=True)
    progress: Mapped[int] = mapped_column(default=0)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    note_count: Mapped[int] = mapped_column(default=0, server_default="0")
    runner_id: Mapped[str | None] = mapped_column(String(RUNNER_ID_MAX_LENGTH), default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    max_attempts: Mapped[int] = mapped_column(default=1, server_default="1")
    idempotency_key: Mapped[str | None] = mapped_column(
        String(IDEMPOTENCY_KEY_MAX_LENGTH), unique=True, default=None
    )
    cancel_requested: Mapped[bool] = mapped_column(default=False, server_default=sa_false())

    notes: Mapped[list[TaskNote]] = relationship(
        back_populates="task",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="TaskNote.id",
    )

    def to_dict(self) -> dict[str, Any]:
        """Return the task as JSON-ready data (times as ISO 8601 strings).

        This is the one representation used by the JSON API, the native
        handlers and the WebSocket events.
        """
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "params": self.params,
            "status": self.status,
            "progress": self.progress,
            "result": self.result,
            "error": self.error,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "note_count": self.note_count,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "idempotency_key": self.idempotency_key,
            "cancel_requested": self.cancel_requested,
        }

    def __repr__(self) -> str:
        return f"<Task {self.id} {self.kind} {self.status} {self.progress}%>"


class TaskNote(db.Model):  # type: ignore[name-defined]
    """A short note attached to a task, written by either side.

    Deleting a task deletes its notes (``ON DELETE CASCADE``); a note for a
    task that does not exist violates the foreign key.
    """

    __tablename__ = "task_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    body: Mapped[str] = mapped_column(String(NOTE_MAX_LENGTH))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    task: Mapped[Task] = relationship(back_populates="notes")

    def to_dict(self) -> dict[str, Any]:
        """Return the note as JSON-ready data."""
        return {
            "id": self.id,
            "task_id": self.task_id,
            "body": self.body,
            "created_at": _iso(self.created_at),
        }


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:  # SQLite hands back naive datetimes; they were stored as UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()
