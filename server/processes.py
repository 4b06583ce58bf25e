"""Several server processes on one port: bind once, fork, supervise.

``python manage.py serve --processes N`` (``PROCESSES``; 0 means one per CPU
core) runs :func:`serve_in_processes`: the parent checks the database once,
binds the listening sockets, then forks ``N`` children. Each child builds its
own :class:`~server.build.Hybrid` after the fork (its own IOLoop, its own
executor and database pool: none of them survives a fork) and serves the
inherited sockets with :func:`server.serve.serve`; the kernel hands each new
connection to one of the processes waiting in ``accept``. The parent serves
nothing: :class:`Supervisor` only watches the children.

Why not ``tornado.process.fork_processes``: it does the forking, but its parent
installs no signal handler, so SIGTERM (from systemd, a container runtime, a
deploy script) kills the parent outright and leaves the children serving as
orphans; it restarts a crashed child at once, without back-off, and gives up
only after 100 restarts over the parent's whole life (raising
``RuntimeError``); and it offers no hook when a child exits (Prometheus's
multiprocess mode needs ``mark_process_dead(pid)`` there). The supervisor
below is the same ``os.fork`` / ``os.waitpid`` loop with those three things
added.

Each child also polls its parent's pid (:func:`watch_parent`): if the parent
dies without forwarding a signal (SIGKILL), the children stop gracefully
instead of serving on unsupervised.

SIGHUP (``systemctl reload``: ``ExecReload=`` in ``deploy/hybrid.service``) goes to
the parent, which validates the cut-over settings too
(:func:`server.cutover.reload_settings`) and forwards the signal to every child;
each reads them again (:func:`server.cutover.reload_plan`). The parent forks every
child, a replacement of a crashed one included, with the last cut-over settings
that the start or a reload validated: so a replacement follows the plan its
siblings follow, neither the one the parent started with (after a reload) nor an
edit of ``.env`` that no reload took (nor, after a refused reload, a bad one). A
child keeps SIGHUP blocked until :func:`server.serve.serve` has installed its
handler, so a reload sent while it starts waits for it rather than killing it (or
being lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from types import FrameType

from flask import Flask

from config import Settings
from server.build import build_hybrid
from server.checks import bind, check_database
from server.cutover import Cutover, reload_settings
from server.serve import run_event_loop, serve

__all__ = [
    "BACKOFF",
    "CRASH_WINDOW",
    "MAX_CRASHES",
    "PARENT_POLL_INTERVAL",
    "Supervisor",
    "serve_in_processes",
    "watch_parent",
]

log = logging.getLogger("hybrid.processes")

MAX_CRASHES = 5
"""Unexpected child exits within :data:`CRASH_WINDOW` after which the supervisor gives up."""

CRASH_WINDOW = 30.0
"""Seconds over which :data:`MAX_CRASHES` is counted."""

BACKOFF = 0.25
"""Seconds before replacing a child after the first recent crash; doubled per recent crash
(at most 4 s), so a child that crashes at start does not make the supervisor spin."""

PARENT_POLL_INTERVAL = 1.0
"""Seconds between a child's checks that its supervisor is still alive."""


def _ignore_exit(pid: int) -> None:
    """The default ``on_child_exit``: nothing to clean up."""


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    """A child's SIGTERM/SIGINT handler until it serves: leave with status 0."""
    raise SystemExit(0)


def _reload_later(signum: int, frame: FrameType | None) -> None:
    """A child's SIGHUP handler until it serves: nothing (the signal is blocked until then)."""


def describe_status(status: int) -> str:
    """``"exit status 0"`` or ``"signal 9 (SIGKILL)"``, from an ``os.waitpid`` status."""
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        return f"signal {signum} ({signal.Signals(signum).name})"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


class Supervisor:
    """Fork ``count`` children running ``child_main`` and keep them running until a signal.

    * Each child's start (its pid) and exit are logged.
    * A child that exits while the supervisor is not stopping (a crash, SIGKILL, the
      OOM killer) is replaced after a back-off (:data:`BACKOFF`, doubled per recent
      crash, at most 4 s); after :data:`MAX_CRASHES` within :data:`CRASH_WINDOW`
      seconds the supervisor stops the others and :meth:`run` returns 1.
    * SIGTERM or SIGINT is forwarded (as SIGTERM) to every child; :meth:`run` waits
      for all of them and returns 0 if every one exited with status 0, else 1.
    * SIGHUP runs ``on_reload`` here, then is forwarded to every child (not once
      stopping). A child starts with
      SIGHUP blocked and a handler that does nothing: one sent before ``child_main``
      is ready stays pending, neither killing the child nor lost; ``child_main``
      installs its own handler and then unblocks it (as :func:`server.serve.serve`
      does), which delivers a pending one.

    Unix only (``os.fork``). Call :meth:`run` from the main thread of a process that
    has no event loop and no threads yet: a fork copies only the calling thread.

    :param count: children to keep running (>= 1).
    :param child_main: run in each child with its index (``0 .. count - 1``; a
        replacement gets its predecessor's); returns the child's exit status. The
        child leaves with ``os._exit`` when it returns or raises (status 1), so it
        never runs the parent's code after the fork.
    :param on_child_exit: called in the parent with the pid of every child that
        exited, expected or not (e.g. ``prometheus_client.multiprocess.mark_process_dead``).
    :param on_reload: called in the parent on SIGHUP, before the children are told
        (e.g. read the settings the next children are forked with); an exception is
        logged, and the signal forwarded all the same.
    :param on_stop: called once in the parent when the stop begins (a signal, or too
        many crashes), before the children are told: e.g. close the parent's copy of
        the listening sockets, which it kept only to fork replacements.
    :param max_crashes: see :data:`MAX_CRASHES`.
    :param crash_window: seconds; see :data:`CRASH_WINDOW`.
    :param backoff: seconds; see :data:`BACKOFF`.
    """

    def __init__(
        self,
        count: int,
        child_main: Callable[[int], int],
        *,
        on_child_exit: Callable[[int], None] = _ignore_exit,
        on_stop: Callable[[], None] = lambda: None,
        on_reload: Callable[[], None] = lambda: None,
        max_crashes: int = MAX_CRASHES,
        crash_window: float = CRASH_WINDOW,
        backoff: float = BACKOFF,
    ) -> None:
        if count < 1:
            raise ValueError(f"count must be at least 1 (got {count})")
        self.count = count
        self.child_main = child_main
        self.on_child_exit = on_child_exit
        self.on_stop = on_stop
        self.on_reload = on_reload
        self.max_crashes = max_crashes
        self.crash_window = crash_window
        self.backoff = backoff
        self.children: dict[int, int] = {}  # pid -> index
        self.stopping = False
        self._crashes: deque[float] = deque()
        self._failed = False

    def run(self) -> int:
        """Start the children, supervise them, and return the exit status once all are gone.

        :returns: 0 when a signal stopped the children and each exited with status 0;
            1 when one did not, or when too many crashed.
        """
        previous = {
            signum: signal.signal(signum, self._on_signal)
            for signum in (signal.SIGTERM, signal.SIGINT)
        }
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, self._on_reload)
        try:
            for index in range(self.count):
                self._spawn(index)
            while self.children:
                try:
                    pid, status = os.waitpid(-1, 0)
                except ChildProcessError:  # none left (should not happen: we track them)
                    break
                if pid in self.children:
                    self._exited(pid, self.children.pop(pid), status)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        log.info("all %d process(es) stopped", self.count)
        return 1 if self._failed else 0

    def stop(self) -> None:
        """Send SIGTERM to every child; they drain and exit, and are not replaced."""
        if not self.stopping:
            try:
                self.on_stop()
            except Exception:
                log.exception("on_stop failed")
        self.stopping = True
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    # -- internals ----------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if not self.stopping:
            log.info("%s: stopping %d process(es)", signal.Signals(signum).name, len(self.children))
        self.stop()

    def _on_reload(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping:
            return  # draining children no longer reload (and may have dropped the handler)
        try:
            self.on_reload()
        except Exception:
            log.exception("on_reload failed")
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGHUP)
        log.info("SIGHUP: forwarded to %d process(es)", len(self.children))

    def _spawn(self, index: int) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        # Signals wait until the child has replaced the supervisor's handlers.
        stop_signals = {signal.SIGTERM, signal.SIGINT}
        signal.pthread_sigmask(signal.SIG_BLOCK, {*stop_signals, signal.SIGHUP})
        pid = os.fork()
        if pid == 0:  # the child
            status = 1
            try:
                for signum in stop_signals:
                    # Until serve() installs its own: a stop before serving is a clean exit.
                    signal.signal(signum, _exit_cleanly)
                # SIGHUP stays blocked (pending, if one comes) until child_main unblocks it.
                signal.signal(signal.SIGHUP, _reload_later)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
                status = self.child_main(index)
            except SystemExit as exit_:
                status = exit_.code if isinstance(exit_.code, int) else 1
            except BaseException:
                log.exception("process %d (pid %d) failed", index, os.getpid())
            finally:
                logging.shutdown()
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(status)
        self.children[pid] = index
        # A SIGHUP that came meanwhile is forwarded now, to the new child too.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {*stop_signals, signal.SIGHUP})
        log.info("started process %d (pid %d)", index, pid)

    def _exited(self, pid: int, index: int, status: int) -> None:
        how = describe_status(status)
        clean = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        try:
            self.on_child_exit(pid)
        except Exception:
            log.exception("on_child_exit(%d) failed", pid)
        if self.stopping:
            (log.info if clean else log.warning)("process %d (pid %d) exited: %s", index, pid, how)
            if not clean:
                self._failed = True
            return
        now = time.monotonic()
        self._crashes.append(now)
        while self._crashes and self._crashes[0] < now - self.crash_window:
            self._crashes.popleft()
        recent = len(self._crashes)
        if recent >= self.max_crashes:
            log.error(
                "process %d (pid %d) exited unexpectedly (%s): %d crashes within %g s, giving up",
                index,
                pid,
                how,
                recent,
                self.crash_window,
            )
            self._failed = True
            self.stop()
            return
        delay = min(self.backoff * 2 ** (recent - 1), 4.0)
        log.error(
            "process %d (pid %d) exited unexpectedly (%s); replacing it in %g s",
            index,
            pid,
            how,
            delay,
        )
        time.sleep(delay)  # a signal meanwhile is handled, and the sleep resumes
        if not self.stopping:
            self._spawn(index)


async def watch_parent(parent_pid: int, stop: asyncio.Event, interval: float) -> None:
    """Set ``stop`` once this process's parent is no longer ``parent_pid`` (it died).

    :param parent_pid: the supervisor's pid, read before the fork.
    :param stop: the server's stop event (:func:`server.serve.serve`'s ``stop``).
    :param interval: seconds between two checks.
    """
    while not stop.is_set():
        if os.getppid() != parent_pid:
            log.warning("the supervisor (pid %d) is gone: stopping", parent_pid)
            stop.set()
            return
        await asyncio.sleep(interval)


def serve_in_processes(
    settings: Settings,
    flask_app: Flask,
    cutover: Cutover,
    on_child_exit: Callable[[int], None] = _ignore_exit,
) -> int:
    """Check the database, bind ``host:port``, and serve it from ``settings.process_count``
    forked processes until SIGTERM/SIGINT.

    :param settings: the shared settings (``processes``, ``event_loop``, ``host``, ``port``...).
    :param flask_app: an app of these settings, used in this (the parent) process only
        for the start-up check; its database connections are closed before the fork.
        Features' ``start`` hooks run in each child, not here.
    :param cutover: the parent's :class:`~server.cutover.Cutover` (of the same build):
        on SIGHUP its route table checks the cut-over settings read again, and valid
        ones become the settings every child forked from then on is built with
        (:func:`server.cutover.reload_settings`). Never applied: the parent serves nothing.
    :param on_child_exit: see :class:`Supervisor`.
    :returns: the supervisor's exit status (0 after a clean stop).
    :raises server.checks.StartupError: the database is unreachable or not migrated,
        or ``host:port`` cannot be bound (before anything is forked).
    """
    from app.extensions import db

    check_database(flask_app)
    with flask_app.app_context():
        db.engine.dispose()  # a pooled connection must not be shared by the children
    sockets = bind(settings.host, settings.port)
    count = settings.process_count
    for sock in sockets:
        host, port = sock.getsockname()[:2]
        log.info("starting %d processes on http://%s:%d (pid %d)", count, host, port, os.getpid())
    parent_pid = os.getpid()
    current = settings  # with the last cut-over settings validated; a fork inherits it

    def reload() -> None:
        nonlocal current
        current = reload_settings(current, cutover)

    def child_main(index: int) -> int:
        return _serve_child(current, sockets, parent_pid)

    def close_sockets() -> None:
        # Once stopping, the parent forks no replacement: its copy of the listening
        # sockets must go, or the kernel would go on queueing connections for it
        # after the children closed theirs (no one would accept them; a proxy
        # would wait, then get a reset, instead of a refusal it can retry elsewhere).
        for sock in sockets:
            sock.close()

    try:
        supervisor = Supervisor(
            count,
            child_main,
            on_child_exit=on_child_exit,
            on_stop=close_sockets,
            on_reload=reload,
        )
        return supervisor.run()
    finally:
        close_sockets()


def _serve_child(settings: Settings, sockets: list[socket.socket], parent_pid: int) -> int:
    """One child: build its own hybrid, serve the inherited sockets, return 0 when stopped.

    ``settings`` are the parent's, with the cut-over settings of the last reload it
    validated (:func:`serve_in_processes`): the plan the other children follow.
    SIGHUP's warning about variables the environment pins is the parent's to log.
    """
    hybrid = build_hybrid(settings)

    async def main() -> int:
        stop = asyncio.Event()
        watcher = asyncio.ensure_future(watch_parent(parent_pid, stop, PARENT_POLL_INTERVAL))
        try:
            return await serve(settings, hybrid, stop=stop, sockets=sockets)
        finally:
            watcher.cancel()

    run_event_loop(main(), settings.event_loop)
    return 0  # threads still busy are left behind: the child leaves with os._exit
