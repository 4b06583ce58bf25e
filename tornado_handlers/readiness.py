"""What ``GET /readyz`` checks: may a load balancer send this process new requests?

Four checks, each ``"ok"`` or one line saying what is wrong:

* ``draining``: the server has not begun a graceful stop (``Application.settings
  ["draining"]``, set first thing on SIGTERM);
* ``executor``: the WSGI bridge is not shedding load (its queueing delay has not
  stood above ``QUEUE_TARGET``) and is below its hard cap of requests in flight;
* ``database``: ``SELECT 1`` answers within :data:`DATABASE_TIMEOUT` seconds;
* ``migrations``: every migration branch is at its head (checked until true once,
  then remembered: a running service's schema does not go backwards).

The database work runs on a daemon thread of its own, one probe at a time, never
on the IOLoop and never queued behind requests on the shared executor: a probe
that is still running when the next one arrives is awaited again rather than
doubled, so a database that hangs costs one thread, not one per probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable

from flask import Flask
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.database import call_in_session
from wsgi_bridge import WSGIContainer

__all__ = ["DATABASE_TIMEOUT", "OK", "Readiness"]

DATABASE_TIMEOUT = 2.0
"""Seconds the database probe (``SELECT 1`` and the migration check) may take."""

OK = "ok"
"""The value of a check that passed."""


class Readiness:
    """The checks of this module's docstring, for one server process.

    :param flask_app: the app whose database to probe.
    :param container: the WSGI bridge whose admission state to read.
    :param migrated: blocking; returns True when every branch is at its head, or
        raises with a one-line message (the composition root passes
        :func:`server.checks.check_known_revisions`'s logic).
    :param timeout: seconds the database probe may take (:data:`DATABASE_TIMEOUT`).
    """

    def __init__(
        self,
        flask_app: Flask,
        container: WSGIContainer,
        migrated: Callable[[], bool],
        timeout: float = DATABASE_TIMEOUT,
    ) -> None:
        self.flask_app = flask_app
        self.container = container
        self.migrated = migrated
        self.timeout = timeout
        self._at_head = False
        self._probe: asyncio.Future[dict[str, str]] | None = None

    async def check(self, draining: bool) -> dict[str, str]:
        """Run every check (IOLoop thread); ``{name: "ok" | what is wrong}``.

        :param draining: whether the server is stopping.
        """
        checks = {"draining": "draining: the server is stopping" if draining else OK}
        checks["executor"] = self.executor_state()
        checks.update(await self.database_state())
        return checks

    def executor_state(self) -> str:
        """``"ok"``, or why the bridge turns new Flask requests away (IOLoop thread)."""
        container = self.container
        if container.in_flight >= container.admission_limit:
            return (
                f"saturated: {container.in_flight} requests in flight "
                "(the cap is the bridge's threads + MAX_QUEUE = "
                f"{container.admission_limit})"
            )
        if container.admission.shedding(time.monotonic()):
            return "saturated: the queueing delay stands above QUEUE_TARGET (shedding load)"
        return OK

    async def database_state(self) -> dict[str, str]:
        """``{"database": ..., "migrations": ...}``, probed within :attr:`timeout` seconds."""
        if self._probe is None or self._probe.done():
            self._probe = self._start_probe()
        try:
            return await asyncio.wait_for(asyncio.shield(self._probe), self.timeout)
        except TimeoutError:
            return {
                "database": f"no answer to SELECT 1 within {self.timeout:g} s",
                "migrations": "unknown: the database did not answer",
            }

    def _start_probe(self) -> asyncio.Future[dict[str, str]]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, str]] = loop.create_future()

        def settle(result: dict[str, str]) -> None:
            if not future.done():
                future.set_result(result)

        def probe() -> None:
            result = self._probe_database()
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(settle, result)

        threading.Thread(target=probe, name="readyz-probe", daemon=True).start()
        return future

    def _probe_database(self) -> dict[str, str]:
        """Blocking (the probe's own thread): ``SELECT 1``, then the migration check."""

        def select_one(session: Session) -> None:
            session.execute(text("SELECT 1"))

        try:
            call_in_session(self.flask_app, select_one)
        except Exception as error:
            detail = str(getattr(error, "orig", None) or error).strip().splitlines()
            return {
                "database": f"unreachable: {detail[0] if detail else type(error).__name__}",
                "migrations": "unknown: the database did not answer",
            }
        if not self._at_head:
            try:
                self._at_head = self.migrated()
            except Exception as error:
                return {"database": OK, "migrations": str(error).splitlines()[0]}
            if not self._at_head:
                return {
                    "database": OK,
                    "migrations": "not at head: run python manage.py db upgrade",
                }
        return {"database": OK, "migrations": OK}
