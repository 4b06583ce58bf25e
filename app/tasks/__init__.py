"""The example feature, Flask side: background tasks.

Flask serves the HTML pages (:mod:`.views`) and the JSON API (:mod:`.api`);
tasks run on the shared executor (:mod:`.runner`) and publish their progress
(:mod:`.events`), which the native WebSocket pushes to browsers. The feature
object that plugs both sides into the skeleton is
:data:`tornado_handlers.tasks.feature`; :func:`init_app` is its Flask half.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
"""The feature's Alembic version location (branch label ``tasks``)."""


def init_app(flask_app: Flask, *, task_threads: int | None = None) -> None:
    """Add the tasks feature to ``flask_app``.

    Registers the pages and the API blueprints, the ``task_id`` URL converter,
    the error mappings (``TaskNotFound`` -> 404, and the task API's errors:
    :mod:`app.tasks.client`), the navigation links, the shell context and the
    Alembic branch ``tasks`` (:data:`MIGRATIONS`), and creates the event hub,
    the backend ``TASK_BACKEND`` names and the one task API both sides use:
    ``flask_app.extensions["task_events"]``, ``["task_backend"]`` (and, in
    process, the same object as ``["task_runner"]``) and ``["tasks"]`` (a
    :class:`app.tasks.client.TaskClient`).
    The hub is :class:`~app.tasks.events.RedisTaskEvents` (Redis pub/sub, every
    process) with ``TASK_BACKEND=queue``, else the in-process
    :class:`~app.tasks.events.TaskEvents`.

    :param flask_app: an app made by :func:`app.create_app` with an executor.
    :param task_threads: tasks allowed to run at once; default ``TASK_THREADS``.
    :raises RuntimeError: if the app has no shared executor.
    :raises config.ConfigError: if ``TASK_THREADS`` (or another ``TaskSettings``
        variable, e.g. ``REDIS_URL``) is invalid.
    """
    from app.errors import map_exception
    from app.nav import add_nav_link
    from app.schema_migrations import add_migrations
    from app.tasks import api, views
    from app.tasks.client import (
        IdempotencyKeyReused,
        ParamsTooLarge,
        TaskBackendUnavailable,
        TaskClient,
        TaskStateConflict,
    )
    from app.tasks.events import RedisTaskEvents, TaskEvents
    from app.tasks.execution import TaskBackend
    from app.tasks.models import Task, TaskStatus
    from app.tasks.runner import TaskRunner
    from app.tasks.service import NO_SUCH_TASK, TaskNotFound
    from app.tasks.settings import TaskSettings
    from app.tasks.settings import task_threads as resolve_task_threads
    from config import load_feature_settings

    executor = flask_app.extensions.get("executor")
    if executor is None:
        raise RuntimeError(
            "the tasks feature runs tasks on the shared executor: "
            "create the app with create_app(settings, executor, features)"
        )
    settings = flask_app.extensions["settings"]
    # The event hub by backend (issue 13, events part): across processes through Redis
    # with the queue backend, whose tasks run in other processes than the WebSockets.
    task_settings = load_feature_settings(TaskSettings)
    events: TaskEvents
    if task_settings.task_backend == "queue":
        events = RedisTaskEvents(task_settings.redis_url, prefix=task_settings.task_queue_prefix)
    else:
        events = TaskEvents()
    flask_app.extensions["task_events"] = events
    backend: TaskBackend
    if task_settings.task_backend == "queue":
        from app.tasks.queue import QueueBackend

        backend = QueueBackend(task_settings.redis_url, prefix=task_settings.task_queue_prefix)
    else:
        backend = TaskRunner(
            flask_app,
            executor,
            events,
            max_running=resolve_task_threads(settings, task_threads),
            heartbeat_interval=task_settings.task_heartbeat_interval,
        )
        flask_app.extensions["task_runner"] = backend
    flask_app.extensions["task_backend"] = backend
    flask_app.extensions["tasks"] = TaskClient(flask_app, backend, events)
    flask_app.register_blueprint(views.blueprint)
    flask_app.register_blueprint(api.blueprint)
    map_exception(flask_app, TaskNotFound, 404, lambda _error: {"error": NO_SUCH_TASK})
    map_exception(flask_app, ParamsTooLarge, 413, lambda error: {"error": str(error)})
    map_exception(flask_app, IdempotencyKeyReused, 409, lambda error: {"error": str(error)})
    map_exception(flask_app, api.RepeatedIdempotencyKey, 400, lambda error: {"error": str(error)})
    map_exception(flask_app, TaskStateConflict, 409, lambda error: {"error": str(error)})
    map_exception(
        flask_app,
        TaskBackendUnavailable,
        503,
        lambda error: {"error": str(error)},
        headers=lambda error: {"Retry-After": str(error.retry_after)},
    )
    add_migrations(flask_app, MIGRATIONS)
    add_nav_link(flask_app, "Tasks", "tasks.index")
    add_nav_link(flask_app, "API", "tasks_api.index")

    def shell_context() -> dict[str, Any]:
        return {"Task": Task, "TaskStatus": TaskStatus}

    flask_app.shell_context_processor(shell_context)
