"""The tasks feature's background worker: Dramatiq consumers plus the lease keeper and reconciler.

``python manage.py worker`` (:mod:`server.worker`) runs it in each worker
process when ``TASK_BACKEND=queue``: a :class:`dramatiq.Worker` consumes the
kinds' queues with ``--threads`` threads, each message runs one attempt on
this process's :class:`~app.tasks.execution.Execution`, and one maintenance
thread, every ``TASK_HEARTBEAT_INTERVAL`` seconds, refreshes the leases of the
attempts running here and runs :meth:`app.tasks.queue.QueueBackend.reconcile`.

On stop, attempts under way are told to stop at their next ``report()``
(they go back to the queue, their attempt given back), Dramatiq hands back
the messages it had prefetched, and the worker waits up to the timeout for
its threads.
"""

from __future__ import annotations

import logging
import threading

import dramatiq
from dramatiq.middleware import TimeLimitExceeded
from flask import Flask

from app.feature import WorkerOptions
from app.tasks.client import TaskBackendUnavailable
from app.tasks.events import TaskEvents
from app.tasks.execution import Execution
from app.tasks.queue import QueueBackend
from app.tasks.runner import new_runner_id
from config import ConfigError

log = logging.getLogger(__name__)

MAX_THREADS = 1024
"""Most ``--threads`` per worker process (as ``TASK_THREADS``); more processes scale further."""

CONSUMER_POLL_MS = 1000
"""Milliseconds an idle Dramatiq consumer waits between two looks at its queue."""


class TaskWorker:
    """One worker process's share of the queue backend (a :class:`app.feature.BackgroundWorker`).

    :param flask_app: this process's app (its database holds the tasks).
    :param backend: the queue backend :func:`app.tasks.init_app` built.
    :param events: where changes are published (Redis, with this backend).
    :param options: ``--threads`` and ``--queues`` (empty: every kind's queue).
    :param heartbeat_interval: seconds between lease refreshes and reconciler
        runs; a lease 3 intervals old is stale.
    :raises config.ConfigError: ``--queues`` names a queue no kind uses.
    """

    def __init__(
        self,
        flask_app: Flask,
        backend: QueueBackend,
        events: TaskEvents,
        options: WorkerOptions,
        *,
        heartbeat_interval: float,
    ) -> None:
        unknown = set(options.queues) - backend.queues
        if unknown:
            raise ConfigError(
                f"--queues: no task kind uses {', '.join(sorted(unknown))} "
                f"(the kinds' queues: {', '.join(sorted(backend.queues))})"
            )
        if not 1 <= options.threads <= MAX_THREADS:
            raise ConfigError(
                f"--threads must be 1 to {MAX_THREADS} (got {options.threads}); "
                "for more, run more processes (--processes)"
            )
        self.flask_app = flask_app
        self.backend = backend
        self.events = events
        self.queues = frozenset(options.queues) or backend.queues
        self.threads = options.threads
        self.heartbeat_interval = heartbeat_interval
        self.stopping = threading.Event()
        self.execution = Execution(
            flask_app,
            events,
            backend,
            runner_id=new_runner_id(),
            stopping=self.stopping,
            stale_after=3 * heartbeat_interval,
            time_limit_errors=(TimeLimitExceeded,),
        )
        self.worker: dramatiq.Worker | None = None
        self._maintenance: threading.Thread | None = None
        self._done = threading.Event()

    def describe(self) -> str:
        """``"tasks: queues default, 8 threads, Redis redis://..., runner host:pid:abcd"``."""
        from app.tasks.queue import redact

        return (
            f"tasks: queues {', '.join(sorted(self.queues))}, {self.threads} threads, "
            f"Redis {redact(self.backend.redis_url)}, runner {self.execution.runner_id}"
        )

    def start(self) -> None:
        """Check Redis, then start consuming and the maintenance thread.

        :raises TaskBackendUnavailable: Redis does not answer.
        """
        self.backend.ping()
        self.backend.attach(self.execution)
        # Dramatiq's own CLI emits this; a Worker started by hand does not, and TimeLimit
        # starts the thread that enforces the hard time limits on it.
        self.backend.broker.emit_after("process_boot")
        self.worker = dramatiq.Worker(
            self.backend.broker,
            queues=set(self.queues),
            worker_threads=self.threads,
            worker_timeout=CONSUMER_POLL_MS,
        )
        self.worker.start()
        self._maintenance = threading.Thread(
            target=self._maintain, name="task-maintenance", daemon=True
        )
        self._maintenance.start()

    def stop(self, timeout: float) -> None:
        """Stop: attempts under way stop at their next ``report()`` and go back to the queue.

        :param timeout: seconds to wait for the consumer and worker threads.
        """
        self.stopping.set()
        self._done.set()
        if self.worker is not None:
            self.worker.stop(timeout=int(timeout * 1000))
        if self._maintenance is not None:
            self._maintenance.join(timeout)
        self.backend.close()

    def _maintain(self) -> None:
        stale_after = 3 * self.heartbeat_interval
        unavailable = False
        while True:
            try:
                self.execution.refresh_leases()
            except Exception:
                log.exception("could not refresh the leases of runner %s", self.execution.runner_id)
            try:
                changed = self.backend.reconcile(
                    self.flask_app, self.events, stale_after=stale_after
                )
                if unavailable:
                    log.info("Redis answers again")
                unavailable = False
                if changed:
                    log.info("reconciler: %d task(s) requeued, failed or sent again", changed)
            except TaskBackendUnavailable as error:
                if not unavailable:
                    log.warning("reconciler: %s", error)
                unavailable = True
            except Exception:
                log.exception("the task reconciler failed")
            if self._done.wait(self.heartbeat_interval):
                return
