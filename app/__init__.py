"""The Flask side of the hybrid: the application factory and its blueprints.

:func:`create_app` builds the app from the shared :class:`config.Settings`
and the shared executor. The composition root
(:func:`tornado_handlers.application.build_hybrid`) calls it and mounts the
result behind the WSGI bridge; tests call it directly for WebTest.
"""

from __future__ import annotations

import atexit
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

from flask import Flask

from config import INSTANCE_PATH, Settings, load_settings


def create_app(settings: Settings | None = None, executor: Executor | None = None) -> Flask:
    """Create and configure the Flask application.

    :param settings: the shared settings; default :func:`config.load_settings`
        (the environment and ``.env``).
    :param executor: the shared thread pool that runs background tasks. The
        hybrid server passes the same one its WSGI bridge and native handlers
        use. When omitted (``flask shell``, WebTest), the app makes its own
        with ``settings.threads`` threads, shut down at interpreter exit.
    :returns: the :class:`~flask.Flask` app; ``app.extensions`` holds
        ``"settings"``, ``"executor"``, ``"task_events"`` and ``"task_runner"``.
    :raises config.ConfigError: if ``settings`` is omitted and the environment
        is invalid.
    """
    settings = settings or load_settings()
    app = Flask(__name__, instance_path=str(INSTANCE_PATH))
    app.config.update(settings.flask_config())
    if executor is None:
        executor = ThreadPoolExecutor(settings.threads, thread_name_prefix="flask-worker")
        atexit.register(executor.shutdown, wait=False, cancel_futures=True)
    app.extensions["settings"] = settings
    app.extensions["executor"] = executor

    register_extensions(app)
    register_blueprints(app)
    register_auth(app)
    register_native_urls(app)
    register_task_runner(app, executor)
    register_error_handlers(app)
    register_shell_context(app)
    return app


def register_extensions(app: Flask) -> None:
    """Bind Flask-SQLAlchemy, Flask-Migrate and CSRF protection to ``app``."""
    from app.database import configure_sqlite, ensure_sqlite_directory
    from app.extensions import csrf, db, migrate
    from config import PROJECT_ROOT

    ensure_sqlite_directory(app.config["SQLALCHEMY_DATABASE_URI"])
    db.init_app(app)
    migrate.init_app(
        app, db, directory=str(PROJECT_ROOT / "migrations"), render_as_batch=True, compare_type=True
    )
    csrf.init_app(app)
    with app.app_context():
        configure_sqlite(db.engine)


def register_blueprints(app: Flask) -> None:
    """Mount the pages and the API."""
    from app.tasks import api, views

    app.register_blueprint(views.blueprint)
    app.register_blueprint(api.blueprint)


def register_auth(app: Flask) -> None:
    """Accounts and login (Flask-Login, the ``auth`` blueprint); see :mod:`app.auth`."""
    from app.auth import init_app

    init_app(app)


def register_native_urls(app: Flask) -> None:
    """The ``native_url(name, *args)`` Jinja global; see :mod:`app.native_urls`."""
    from app.native_urls import init_app

    init_app(app)


def register_task_runner(app: Flask, executor: Executor) -> None:
    """Create the task event hub and runner on the shared executor."""
    from app.tasks.events import TaskEvents
    from app.tasks.runner import TaskRunner

    events = TaskEvents()
    app.extensions["task_events"] = events
    app.extensions["task_runner"] = TaskRunner(app, executor, events)


def register_error_handlers(app: Flask) -> None:
    """JSON errors for the API, HTML pages elsewhere."""
    from app.errors import register_error_handlers as register

    register(app)


def register_shell_context(app: Flask) -> None:
    """``manage.py shell`` starts with ``db`` and the models imported."""
    from app.extensions import db
    from app.tasks.models import Task, TaskStatus

    def context() -> dict[str, Any]:
        return {"db": db, "Task": Task, "TaskStatus": TaskStatus}

    app.shell_context_processor(context)
