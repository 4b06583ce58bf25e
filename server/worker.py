"""``python manage.py worker``: the processes that run the features' background workers.

A worker process builds its own app (the same composition as the server's),
asks every feature for a :class:`app.feature.BackgroundWorker`
(:meth:`app.feature.Feature.worker`), checks the database, starts them and
waits: SIGTERM or SIGINT stops them (each gets ``SHUTDOWN_TIMEOUT`` seconds to
let its jobs end or hand them back) and the process exits 0, as ``serve``
does. With ``--processes N`` the same :class:`server.processes.Supervisor` as
``serve --processes`` forks them, replaces one that dies, gives up on a crash
loop, and its children stop when it is killed.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Sequence
from types import FrameType

from flask import Flask

from app.feature import BackgroundWorker, Feature, WorkerOptions
from config import Settings
from server.build import build_hybrid
from server.checks import StartupError, check_database
from server.processes import PARENT_POLL_INTERVAL, Supervisor

__all__ = ["run_worker", "run_workers"]

log = logging.getLogger("hybrid.worker")


def run_workers(settings: Settings, options: WorkerOptions, processes: int) -> int:
    """Run ``processes`` worker processes (``0``: one per CPU core) until SIGTERM/SIGINT.

    One process runs in this process; more are forked by a :class:`Supervisor`
    after a first check in this process (so a bad configuration or an
    unreachable database is one error, not one per child).

    :param settings: the shared settings.
    :param options: ``--threads`` and ``--queues``.
    :param processes: how many processes (``>= 0``).
    :returns: the exit status: 0 after a clean stop.
    :raises StartupError: nothing to run, the database is unreachable or not
        migrated, or a worker refused to start.
    :raises config.ConfigError: a feature rejected the options.
    """
    if processes < 0:
        raise StartupError(f"--processes must be 0 (one per core) or more (got {processes})")
    count = processes or os.cpu_count() or 1
    if count == 1:
        return run_worker(settings, options)
    hybrid = build_hybrid(settings)
    try:
        check_database(hybrid.flask_app)
        if not _workers(hybrid.features, hybrid.flask_app, options):
            raise StartupError(NOTHING_TO_RUN)
    finally:
        hybrid.close()
    parent = os.getpid()
    log.info("starting %d worker processes (pid %d)", count, parent)

    def child_main(index: int) -> int:
        return run_worker(settings, options, parent_pid=parent)

    return Supervisor(count, child_main).run()


NOTHING_TO_RUN = (
    "no feature has a background worker to run with this configuration "
    "(a feature offers one through Feature.worker; see docs/features.md)"
)


def run_worker(settings: Settings, options: WorkerOptions, parent_pid: int | None = None) -> int:
    """Run the features' background workers in this process until SIGTERM/SIGINT.

    :param settings: the shared settings (``shutdown_timeout``...).
    :param options: ``--threads`` and ``--queues``.
    :param parent_pid: the supervisor's pid, in a forked child: if it dies
        (SIGKILL), this process stops as if told to.
    :returns: 0 after a clean stop.
    :raises StartupError: see :func:`run_workers`.
    """
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if not stop.is_set():
            log.info("%s: stopping", signal.Signals(signum).name)
        stop.set()

    previous = {
        signum: signal.signal(signum, on_signal) for signum in (signal.SIGTERM, signal.SIGINT)
    }
    hybrid = build_hybrid(settings)
    started: list[BackgroundWorker] = []
    try:
        check_database(hybrid.flask_app)
        workers = _workers(hybrid.features, hybrid.flask_app, options)
        if not workers:
            raise StartupError(NOTHING_TO_RUN)
        for worker in workers:
            try:
                worker.start()
            except StartupError:
                raise
            except Exception as error:
                raise StartupError(f"a worker could not start: {error}") from error
            started.append(worker)
            log.info("worker started: %s (pid %d)", worker.describe(), os.getpid())
        while not stop.wait(PARENT_POLL_INTERVAL):
            if parent_pid is not None and os.getppid() != parent_pid:
                log.warning("the supervisor (pid %d) is gone: stopping", parent_pid)
                break
        log.info("stopping: jobs under way get %g s", settings.shutdown_timeout)
    finally:
        for worker in reversed(started):
            try:
                worker.stop(settings.shutdown_timeout)
            except Exception:
                log.exception("a worker failed to stop cleanly")
        hybrid.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    log.info("worker stopped (pid %d)", os.getpid())
    return 0


def _workers(
    features: Sequence[Feature], flask_app: Flask, options: WorkerOptions
) -> list[BackgroundWorker]:
    """The background workers the features offer for ``options`` (in feature order)."""
    found = []
    for feature in features:
        worker = feature.worker(flask_app, options)
        if worker is not None:
            found.append(worker)
    return found
