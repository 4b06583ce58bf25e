"""The example feature, native side, and the feature object that plugs it in.

:data:`feature` is what ``server/features.py`` lists. It joins the Flask half
(:func:`app.tasks.init_app`: pages, API, runner, migrations) and the native
half (the rules below), and owns the task runner's life cycle: the recovery
sweep of tasks whose process died, and stopping the runner on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

import tornado.autoreload
import tornado.ioloop
from flask import Flask
from prometheus_client.registry import Collector
from tornado.routing import Rule
from tornado.web import url

from app import tasks
from app.feature import BackgroundWorker, Feature, Runtime, Shared, WorkerOptions
from app.tasks.events import RedisTaskEvents
from app.tasks.metrics import TaskStatusCollector
from app.tasks.runner import TaskRunner, recover_interrupted
from app.tasks.settings import TaskSettings
from tornado_handlers.tasks.handlers import (
    TaskCancelHandler,
    TaskEnqueueHandler,
    TaskNotesHandler,
    TaskRetryHandler,
    TaskStatsHandler,
)
from tornado_handlers.tasks.ported import TaskDetailHandler
from tornado_handlers.tasks.progress import TaskProgressSocket

log = logging.getLogger(__name__)

SWEEPER_KEY = "task_sweeper"
"""``flask_app.extensions["task_sweeper"]``: the running recovery sweep of that app."""

RELAY_KEY = "task_events_relay"
"""``flask_app.extensions["task_events_relay"]``: the :class:`asyncio.Task` relaying
Redis task events to this process's WebSockets (``TASK_BACKEND=queue``)."""


def task_runner(flask_app: Flask) -> TaskRunner:
    """The runner :func:`app.tasks.init_app` put on ``flask_app``."""
    runner: TaskRunner = flask_app.extensions["task_runner"]
    return runner


TASK_ID = r"([^/]+)"
"""The id group of every native task route: any one path segment, judged by the handler.

Like Flask's ``<task_id:...>`` (:class:`app.tasks.service.TaskIdConverter`, whose
regex is the same): a segment that is no valid id (``-1``, ``abc``, out of range)
reaches the handler, and :func:`app.tasks.service.parse_task_id` answers it with
the API's 404 ``no such task``. A digits-only group let ``/api/v2/tasks/-1/notes``
fall through to Flask, which has no such route: a generic 404.
"""


class TasksFeature(Feature):
    """Background tasks: Flask pages and API, native stats, notes, a ported route, a WebSocket.

    :param task_threads: tasks allowed to run at once; default ``TASK_THREADS``.
    """

    name = "tasks"
    packages = ("app.tasks", "tornado_handlers.tasks")
    settings = (TaskSettings,)

    def __init__(self, task_threads: int | None = None) -> None:
        self.task_threads = task_threads

    def init_app(self, flask_app: Flask) -> None:
        """The Flask half: :func:`app.tasks.init_app`."""
        tasks.init_app(flask_app, task_threads=self.task_threads)

    def pool_threads(self, flask_app: Flask) -> int:
        """The in-process runner's ``TASK_THREADS`` (tasks run on the shared pool); 0 with
        ``TASK_BACKEND=queue``, whose tasks run in worker processes."""
        runner = flask_app.extensions.get("task_runner")
        return int(runner.max_running) if runner is not None else 0

    def native_rules(self, shared: Shared) -> Sequence[Rule]:
        """The native rules: stats, a ported route, the task API and notes natively, the WebSocket.

        ``/api/stats``, ``/api/tasks/<id>``, ``/api/v2/tasks`` (enqueue),
        ``/api/v2/tasks/<id>/cancel``, ``/api/v2/tasks/<id>/retry``,
        ``/api/v2/tasks/<id>/notes`` and ``/ws/tasks``. The ported route keeps
        its Flask URL, so it lives under the Flask mount (``FLASK_MOUNT``).
        """
        mount = shared.flask_app.extensions["settings"].flask_mount
        events = shared.flask_app.extensions["task_events"]
        return [
            url(r"/api/stats", TaskStatsHandler, shared.kwargs(), name="task_stats"),
            # Ported from Flask's tasks_api.detail (docs/migration.md); the Flask view stays.
            url(
                mount + r"/api/tasks/" + TASK_ID,
                TaskDetailHandler,
                shared.kwargs(),
                name="task_detail",
            ),
            url(r"/api/v2/tasks", TaskEnqueueHandler, shared.kwargs(), name="task_enqueue_v2"),
            url(
                rf"/api/v2/tasks/{TASK_ID}/cancel",
                TaskCancelHandler,
                shared.kwargs(),
                name="task_cancel_v2",
            ),
            url(
                rf"/api/v2/tasks/{TASK_ID}/retry",
                TaskRetryHandler,
                shared.kwargs(),
                name="task_retry_v2",
            ),
            url(
                rf"/api/v2/tasks/{TASK_ID}/notes",
                TaskNotesHandler,
                shared.kwargs(),
                name="task_notes_v2",
            ),
            url(
                r"/ws/tasks", TaskProgressSocket, shared.kwargs(events=events), name="task_progress"
            ),
        ]

    def worker(self, flask_app: Flask, options: WorkerOptions) -> BackgroundWorker | None:
        """With ``TASK_BACKEND=queue``: the Dramatiq consumers of the kinds' queues
        (:class:`app.tasks.worker.TaskWorker`); in process, ``None`` (the server runs tasks).
        """
        from app.tasks.queue import QueueBackend

        backend = flask_app.extensions["task_backend"]
        if not isinstance(backend, QueueBackend):
            log.info(
                "tasks: TASK_BACKEND=inprocess, so the server runs them: "
                "set TASK_BACKEND=queue (and REDIS_URL) to run them in workers"
            )
            return None
        from app.tasks.worker import TaskWorker
        from config import load_feature_settings

        return TaskWorker(
            flask_app,
            backend,
            flask_app.extensions["task_events"],
            options,
            heartbeat_interval=load_feature_settings(TaskSettings).task_heartbeat_interval,
        )

    def collectors(self, runtime: Runtime) -> Sequence[Collector]:
        """``tasks{status}`` for ``GET /metrics``, counted in the database at scrape time."""
        return [TaskStatusCollector(runtime.flask_app)]

    async def start(self, runtime: Runtime) -> None:
        """Interrupt tasks a dead process left behind, then keep sweeping for them.

        Start-up recovery alone would leave ``running`` for ever the tasks of a
        process killed less than a stale interval before this one started, so
        the sweep repeats every heartbeat interval (excluding this process's
        own tasks). With autoreload, unfinished tasks are recorded
        ``interrupted`` before the process restarts. With ``TASK_BACKEND=queue``
        it also starts relaying task events from Redis to this process's
        WebSockets (:meth:`app.tasks.events.RedisTaskEvents.relay`).
        """
        flask_app = runtime.flask_app
        # -- events relay (issue 13, events part): Redis pub/sub -> this process's WebSockets
        events = flask_app.extensions["task_events"]
        if isinstance(events, RedisTaskEvents):
            flask_app.extensions[RELAY_KEY] = asyncio.create_task(
                events.relay(), name="task-events-relay"
            )
        # -- end events relay
        if "task_runner" not in flask_app.extensions:
            return  # the queue backend: workers run tasks and repair leases (app.tasks.worker)
        runner = task_runner(flask_app)
        stale_after = 3 * runner.heartbeat_interval
        await asyncio.to_thread(recover_interrupted, flask_app, stale_after)
        loop = asyncio.get_running_loop()

        async def sweep() -> None:
            try:
                await loop.run_in_executor(
                    runtime.executor,
                    lambda: recover_interrupted(
                        flask_app, stale_after=stale_after, exclude_runner=runner.runner_id
                    ),
                )
            except RuntimeError:  # the executor shut down meanwhile
                pass
            except Exception:
                log.exception("the periodic sweep of stale tasks failed")

        sweeper = tornado.ioloop.PeriodicCallback(sweep, runner.heartbeat_interval * 1000)
        sweeper.start()
        flask_app.extensions[SWEEPER_KEY] = sweeper
        if runtime.settings.autoreload:

            def before_reload() -> None:
                runner.interrupt_unfinished()

            tornado.autoreload.add_reload_hook(before_reload)

    async def stop(self, runtime: Runtime) -> None:
        """Stop sweeping and relaying task events; queued tasks are recorded
        ``interrupted``, running ones told to stop."""
        sweeper: tornado.ioloop.PeriodicCallback | None = runtime.flask_app.extensions.pop(
            SWEEPER_KEY, None
        )
        if sweeper is not None:
            sweeper.stop()
        # -- events relay (issue 13, events part): unsubscribe, close its connection
        relay: asyncio.Task[None] | None = runtime.flask_app.extensions.pop(RELAY_KEY, None)
        if relay is not None:
            relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relay
        # -- end events relay
        if "task_runner" in runtime.flask_app.extensions:
            await asyncio.to_thread(task_runner(runtime.flask_app).stop)

    async def closed(self, runtime: Runtime) -> None:
        """Record ``interrupted`` the tasks still unfinished once the pool is down (in process);
        with the queue backend, close this process's Redis connections."""
        extensions = runtime.flask_app.extensions
        if "task_runner" in extensions:
            await asyncio.to_thread(task_runner(runtime.flask_app).interrupt_unfinished)
        else:
            await asyncio.to_thread(extensions["task_backend"].close)


feature = TasksFeature()
"""The tasks feature as ``server/features.py`` lists it."""
