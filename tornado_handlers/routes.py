"""The route table: every URL of the service, in the order Tornado matches them.

Native rules come first; the last rule hands everything else to the Flask app
through the WSGI bridge. To port a Flask route, add a native rule for the same
path above the fallback: it wins from then on (``manage.py routes`` flags the
Flask route as shadowed).
"""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Any

from flask import Flask
from tornado.routing import Rule
from tornado.web import url

from tornado_handlers.account import MeHandler, PreferencesHandler
from tornado_handlers.health import HealthHandler
from tornado_handlers.tasks import TaskNotesHandler, TaskStatsHandler
from tornado_handlers.tasks_api import TaskDetailHandler
from tornado_handlers.websocket import TaskProgressSocket
from wsgi_bridge import WSGIContainer, WSGIFallbackHandler


def make_routes(flask_app: Flask, executor: Executor, container: WSGIContainer) -> list[Rule]:
    """Return the rules, native first and the Flask fallback last.

    :param flask_app: the Flask app (behind ``container``), for handlers that
        share its database and config.
    :param executor: the shared thread pool, for native handlers' blocking work.
    :param container: the WSGI bridge wrapping ``flask_app``.
    :returns: :class:`tornado.routing.Rule` objects for ``tornado.web.Application``.
    """
    shared: dict[str, Any] = {"executor": executor, "flask_app": flask_app}
    # A ported route keeps its URL, so it lives under the Flask mount (FLASK_MOUNT).
    mount = flask_app.extensions["settings"].flask_mount
    return [
        url(r"/healthz", HealthHandler, {"container": container, **shared}, name="healthz"),
        url(r"/api/stats", TaskStatsHandler, shared, name="task_stats"),
        # Ported from Flask's tasks_api.detail (docs/migration.md); the Flask view stays behind.
        url(mount + r"/api/tasks/([0-9]+)", TaskDetailHandler, shared, name="task_detail"),
        url(r"/api/me", MeHandler, shared, name="me"),
        url(r"/api/preferences", PreferencesHandler, shared, name="preferences"),
        url(r"/api/v2/tasks/([0-9]+)/notes", TaskNotesHandler, shared, name="task_notes_v2"),
        url(
            r"/ws/tasks",
            TaskProgressSocket,
            {"events": flask_app.extensions["task_events"], **shared},
            name="task_progress",
        ),
        # Last: everything no native rule matched goes to Flask.
        url(r".*", WSGIFallbackHandler, {"fallback": container}, name="flask"),
    ]
