"""``GET /healthz``: liveness, answered by the IOLoop alone."""

from __future__ import annotations

from typing import Any

from tornado_handlers.base import BaseHandler


class HealthHandler(BaseHandler):
    """Liveness probe: ``{"status": "ok", "wsgi": {...}}``.

    Touches neither the database nor the executor, so it answers even while
    every worker thread is busy -- which is exactly when a load balancer needs
    the truth. ``wsgi.in_flight`` counts bridged requests running or queued.

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
                "wsgi": {"in_flight": self.container.in_flight},
            }
        )
