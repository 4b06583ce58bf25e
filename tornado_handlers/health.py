"""``GET /healthz``: liveness, answered by the IOLoop alone; ``GET /readyz``: readiness."""

from __future__ import annotations

import os
import threading
from typing import Any

from tornado_handlers.base import BaseHandler
from tornado_handlers.readiness import OK, Readiness


class HealthHandler(BaseHandler):
    """Liveness probe: ``{"status": "ok", "pid": 1234, "wsgi": {...}}``.

    Touches neither the database nor the executor, so it answers even while
    every worker thread is busy -- which is exactly when a load balancer needs
    the truth. ``wsgi.in_flight`` counts bridged requests running or queued;
    ``pid`` is the answering process's (several serve one port with ``PROCESSES``).

    :param container: the :class:`wsgi_bridge.WSGIContainer` to report on.
    """

    def initialize(self, container: Any, **kwargs: Any) -> None:  # type: ignore[override]
        super().initialize(**kwargs)
        self.container = container

    def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.write_json(
            {
                "status": "ok",
                "pid": os.getpid(),
                "wsgi": {"in_flight": self.container.in_flight},
            }
        )


class ReadyHandler(BaseHandler):
    """Readiness probe: may a load balancer send this process new requests?

    ``200 {"status": "ready", "checks": {...}}`` when every check of
    :class:`~tornado_handlers.readiness.Readiness` says ``"ok"``, else ``503
    {"status": "not ready", "checks": {...}}`` where each failed check says what
    is wrong (``draining``, ``executor``, ``database``, ``migrations``). Never
    cached (``Cache-Control: no-store``). On SIGTERM it answers 503 first, for
    ``DRAIN_GRACE`` seconds before the listener closes (:func:`server.serve.shutdown`).

    :param readiness: the checks, one object per process (the route table's).
    """

    def initialize(self, readiness: Readiness, **kwargs: Any) -> None:  # type: ignore[override]
        super().initialize(**kwargs)
        self.readiness = readiness

    async def get(self) -> None:
        draining: threading.Event = self.settings["draining"]
        checks = await self.readiness.check(draining.is_set())
        ready = all(value == OK for value in checks.values())
        self.set_header("Cache-Control", "no-store")
        self.write_json(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status=200 if ready else 503,
        )
