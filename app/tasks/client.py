"""The one small task API both sides use: enqueue, read, cancel, retry.

``flask_app.extensions["tasks"]`` is a :class:`TaskClient` (:func:`task_client`).
Flask views call it directly; native handlers call it on the shared executor
(``await self.run_in_executor(client.enqueue, ...)``): every method is one or
two short units of work and, with the queue backend, one Redis command.

The backend (``TASK_BACKEND``) is behind it and changes nothing here:

================  ============================================================
``inprocess``     the shared executor of this process (the default; nothing to set up)
``queue``         Dramatiq on Redis (``REDIS_URL``); ``python manage.py worker`` runs them
================  ============================================================

Errors, mapped to HTTP statuses on both sides by :func:`app.tasks.init_app`:
:class:`app.validation.InvalidInput` (422: unknown kind, invalid or not
JSON-serialisable params), :class:`ParamsTooLarge` (413),
:class:`IdempotencyKeyReused` and :class:`TaskStateConflict` (409),
:class:`TaskBackendUnavailable` (503), :class:`TaskNotFound` (404).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any

from flask import Flask
from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.database import after_commit, call_in_session, utcnow
from app.tasks.events import TaskEvents
from app.tasks.execution import AfterCommit, TaskBackend
from app.tasks.kinds import KINDS
from app.tasks.models import (
    IDEMPOTENCY_KEY_MAX_LENGTH,
    NAME_MAX_LENGTH,
    RETRYABLE_STATUSES,
    Task,
    TaskStatus,
)
from app.validation import MAX_JSON_DEPTH, InvalidInput, nesting_depth, parse, plain_text

MAX_PARAMS_BYTES = 64 * 1024
"""Largest ``params`` of one task, in bytes of compact JSON (UTF-8)."""

TaskName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_MAX_LENGTH),
    AfterValidator(plain_text),
]
"""A task's name: stripped, 1 to :data:`~app.tasks.models.NAME_MAX_LENGTH` characters,
plain text (:func:`app.validation.plain_text`, as :data:`~app.validation.PlainText`)."""


class _Named(BaseModel):
    """The name alone, as :meth:`TaskClient.enqueue` checks it for every caller."""

    model_config = ConfigDict(strict=True)
    name: TaskName | None = None


class TaskBackendUnavailable(RuntimeError):
    """The backend cannot take a task now (Redis is down); nothing was written. Answered 503.

    :param message: what failed, for people (no credentials).
    :param retry_after: seconds after which trying again makes sense.
    """

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ParamsTooLarge(ValueError):
    """The params are larger than :data:`MAX_PARAMS_BYTES`; nothing was written. Answered 413.

    :param size: their size, in bytes.
    """

    def __init__(self, size: int) -> None:
        super().__init__(
            f"params are {size} bytes of JSON; at most {MAX_PARAMS_BYTES} bytes are accepted"
        )
        self.size = size


class IdempotencyKeyReused(ValueError):
    """The idempotency key belongs to a task with another kind, params or name. Answered 409.

    :param task_id: the task the key belongs to.
    """

    def __init__(self, key: str, task_id: int) -> None:
        super().__init__(
            f"idempotency key {key!r} was used for task {task_id} with another kind, params or name"
        )
        self.task_id = task_id


class TaskNotFound(LookupError):
    """No task has the given id (the API answers 404 ``{"error": "no such task"}``).

    Also importable from :mod:`app.tasks.service`, where the id checks live.
    """


class TaskStateConflict(ValueError):
    """The task is not in a state that allows the operation (e.g. retry a running task). 409."""


@dataclass(frozen=True)
class Enqueued:
    """What :meth:`TaskClient.enqueue` returns.

    :ivar task: the task as data (``Task.to_dict()``).
    :ivar created: ``False`` when an idempotency key gave back an existing task.
    """

    task: dict[str, Any]
    created: bool

    @property
    def id(self) -> int:
        """The task id."""
        return int(self.task["id"])


class TaskClient:
    """Enqueue, read, cancel and retry tasks; the same on both sides and both backends.

    Blocking (database, and Redis with the queue backend): call it from a
    Flask view or on the shared executor, never on the IOLoop thread.

    :param flask_app: the app whose database holds the tasks.
    :param backend: where tasks run (:class:`app.tasks.execution.TaskBackend`).
    :param events: where every change is published.
    """

    def __init__(self, flask_app: Flask, backend: TaskBackend, events: TaskEvents) -> None:
        self.flask_app = flask_app
        self.backend = backend
        self.events = events

    def enqueue(
        self,
        kind: Any,
        params: Any = None,
        *,
        idempotency_key: str | None = None,
        name: str | None = None,
    ) -> Enqueued:
        """Validate, store and hand a new task to the backend; return it (``queued``).

        The row and the hand-over are one unit of work: if the backend cannot
        take the task, nothing is stored (and :class:`TaskBackendUnavailable`
        is raised); once this returns, the task is durable.

        :param kind: a kind's name (:data:`app.tasks.kinds.KINDS`).
        :param params: a ``dict`` of JSON values, the kind's params (defaults filled in).
        :param idempotency_key: up to 255 characters; a second enqueue with the
            same key, kind, params and name returns the first task (``created=False``);
            with other ones it is refused (:class:`IdempotencyKeyReused`).
        :param name: an optional unique name (:data:`TaskName`: stripped, plain text).
        :raises InvalidInput: unknown kind, invalid params, params that are not
            JSON-serialisable or nest too deeply, an empty or too long key, a
            blank or too long name or one with control characters.
        :raises ParamsTooLarge: params over :data:`MAX_PARAMS_BYTES`.
        :raises IdempotencyKeyReused: the key was used with another kind, params or name.
        :raises TaskBackendUnavailable: the queue cannot be reached (503).
        :raises sqlalchemy.exc.IntegrityError: a task named ``name`` exists (409).
        """
        clean = validate_task(kind, params)
        name = parse(_Named, {"name": name}).name
        if idempotency_key is not None and not valid_key(idempotency_key):
            raise InvalidInput(
                {
                    "idempotency_key": f"must be 1 to {IDEMPOTENCY_KEY_MAX_LENGTH} printable "
                    "ASCII characters, not starting or ending with a space"
                }
            )
        task_kind = KINDS[kind]
        after: list[AfterCommit] = []

        def insert(session: Session) -> dict[str, Any]:
            after.clear()
            task = Task(
                name=name,
                kind=kind,
                params=clean,
                status=TaskStatus.QUEUED.value,
                progress=0,
                attempts=0,
                max_attempts=task_kind.max_attempts,
                idempotency_key=idempotency_key,
                created_at=utcnow(),
            )
            session.add(task)
            session.flush()
            callback = self.backend.dispatch(task, task_kind)
            if callback is not None:
                after.append(callback)
            return task.to_dict()

        if idempotency_key is not None:
            existing = self._by_key(idempotency_key, kind, clean, name)
            if existing is not None:
                return Enqueued(existing, created=False)
        try:
            data = call_in_session(self.flask_app, insert)
        except IntegrityError:
            if idempotency_key is None:
                raise
            existing = self._by_key(idempotency_key, kind, clean, name)  # a concurrent twin won
            if existing is None:
                raise
            return Enqueued(existing, created=False)
        self._after_commit(data, after)
        return Enqueued(data, created=True)

    def get(self, task_id: int) -> dict[str, Any]:
        """Return task ``task_id`` as data: status, progress, result or error.

        :raises app.tasks.service.TaskNotFound: no such task.
        """
        return call_in_session(self.flask_app, lambda session: _get(session, task_id).to_dict())

    def cancel(self, task_id: int) -> dict[str, Any]:
        """Cancel task ``task_id``: at once if ``queued``, at its next ``report()`` if ``running``.

        Cancelling a task already asked to stop is harmless (same answer).

        :returns: the task as data (``cancelled``, or ``running`` with ``cancel_requested``).
        :raises app.tasks.service.TaskNotFound: no such task.
        :raises TaskStateConflict: the task already finished.
        """

        def change(session: Session) -> dict[str, Any]:
            task = _get(session, task_id, lock=True)
            if task.status == TaskStatus.QUEUED.value:
                task.status = TaskStatus.CANCELLED.value
                task.error = "cancelled"
                task.finished_at = utcnow()
                task.cancel_requested = True
            elif task.status == TaskStatus.RUNNING.value:
                task.cancel_requested = True
            else:
                raise TaskStateConflict(f"task {task_id} is {task.status}: nothing to cancel")
            session.flush()
            return task.to_dict()

        data = call_in_session(self.flask_app, change)
        self._after_commit(data, [])
        return data

    def retry(self, task_id: int) -> dict[str, Any]:
        """Queue a ``failed``, ``interrupted`` or ``cancelled`` task again, with fresh attempts.

        The same task (same id) goes back to ``queued`` with its progress,
        result, error and attempts reset, and is handed to the backend in the
        same unit of work.

        :returns: the task as data (``queued``).
        :raises app.tasks.service.TaskNotFound: no such task.
        :raises TaskStateConflict: the task is queued, running or succeeded.
        :raises TaskBackendUnavailable: the queue cannot be reached (nothing changed).
        """
        after: list[AfterCommit] = []

        def change(session: Session) -> dict[str, Any]:
            after.clear()
            task = _get(session, task_id, lock=True)
            if task.status not in RETRYABLE_STATUSES:
                allowed = ", ".join(sorted(RETRYABLE_STATUSES))
                raise TaskStateConflict(
                    f"task {task_id} is {task.status}: only a task that is {allowed} can be retried"
                )
            kind = KINDS.get(task.kind)
            if kind is None:
                raise TaskStateConflict(f"task {task_id}'s kind {task.kind!r} no longer exists")
            task.status = TaskStatus.QUEUED.value
            task.progress = 0
            task.result = None
            task.error = None
            task.attempts = 0
            task.max_attempts = kind.max_attempts
            task.cancel_requested = False
            task.runner_id = None
            task.heartbeat_at = None
            task.lease_expires_at = None
            task.started_at = None
            task.finished_at = None
            session.flush()
            callback = self.backend.dispatch(task, kind)
            if callback is not None:
                after.append(callback)
            return task.to_dict()

        data = call_in_session(self.flask_app, change)
        self._after_commit(data, after)
        return data

    def _after_commit(self, data: dict[str, Any], after: list[AfterCommit]) -> None:
        """Publish ``data`` and run the backend's hand-over once the change is committed.

        Now, or at the commit of an outer unit of work the change joined
        (:func:`app.database.after_commit`): a runner handed an uncommitted row would not
        see it (or wait for its lock), and a page would show a task that may be rolled
        back. The event goes first: the runner's events must come after it.
        """

        def publish_then_hand_over() -> None:
            self._publish(data)
            for callback in after:
                callback()

        after_commit(self.flask_app, publish_then_hand_over)

    def _by_key(
        self, key: str, kind: str, params: dict[str, Any], name: str | None
    ) -> dict[str, Any] | None:
        def find(session: Session) -> dict[str, Any] | None:
            task = session.scalars(select(Task).where(Task.idempotency_key == key)).one_or_none()
            return None if task is None else task.to_dict()

        data = call_in_session(self.flask_app, find)
        if data is None:
            return None
        if (data["kind"], data["params"], data["name"]) != (kind, params, name):
            raise IdempotencyKeyReused(key, int(data["id"]))
        return data

    def _publish(self, data: dict[str, Any]) -> None:
        self.events.publish({"type": "task", "task": data})


def valid_key(key: str) -> bool:
    """Whether ``key`` is a usable idempotency key: 1 to 255 printable ASCII characters,
    without leading or trailing spaces (an HTTP header carries nothing else intact)."""
    return (
        1 <= len(key) <= IDEMPOTENCY_KEY_MAX_LENGTH
        and key.isascii()
        and key.isprintable()
        and key.strip() == key
    )


def task_client(flask_app: Flask) -> TaskClient:
    """The :class:`TaskClient` :func:`app.tasks.init_app` put on ``flask_app``."""
    client: TaskClient = flask_app.extensions["tasks"]
    return client


def validate_task(kind: Any, params: Any) -> dict[str, Any]:
    """Check ``kind`` and ``params`` and return the params with defaults filled in.

    :param kind: the kind's name, a ``str`` among :data:`app.tasks.kinds.KINDS`.
    :param params: a ``dict`` of the kind's parameters (missing ones take defaults).
    :raises InvalidInput: naming the invalid fields; also params that are not
        JSON-serialisable (e.g. a ``datetime`` or a ``set`` passed from Python)
        or nest deeper than :data:`app.validation.MAX_JSON_DEPTH`.
    :raises ParamsTooLarge: params over :data:`MAX_PARAMS_BYTES` of JSON.
    """
    if not isinstance(kind, str) or kind not in KINDS:
        raise InvalidInput({"kind": f"must be one of: {', '.join(sorted(KINDS))}"})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise InvalidInput({"params": "must be an object"})
    if nesting_depth(params) > MAX_JSON_DEPTH:  # before json.dumps, which recurses
        raise InvalidInput(
            {"params": f"must not nest arrays and objects more than {MAX_JSON_DEPTH} levels deep"}
        )
    try:
        size = len(json.dumps(params, separators=(",", ":"), allow_nan=False).encode())
    except (TypeError, ValueError) as error:
        raise InvalidInput({"params": f"must be JSON-serialisable: {error}"}) from None
    if size > MAX_PARAMS_BYTES:
        raise ParamsTooLarge(size)
    clean: dict[str, Any] = parse(KINDS[kind].params_model, params, prefix="params.").model_dump(
        mode="json"
    )
    return clean


def _get(session: Session, task_id: int, *, lock: bool = False) -> Task:
    task = session.get(Task, task_id, with_for_update=lock)
    if task is None:
        raise TaskNotFound(task_id)
    return task
