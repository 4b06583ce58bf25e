"""The Flask side of the hybrid: the application factory.

:func:`create_app` builds the skeleton's app from the shared
:class:`config.Settings` and the shared executor, then lets each feature add
itself (:meth:`app.feature.Feature.init_app`). The composition root
(:func:`server.build.build_hybrid`) calls it with the features of
``server/features.py`` and mounts the result behind the WSGI bridge.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

from flask import Flask

from app.session_cookies import SessionInterface
from config import INSTANCE_PATH, Settings, load_settings

if TYPE_CHECKING:
    from app.feature import Feature


def create_app(
    settings: Settings | None = None,
    executor: Executor | None = None,
    features: Iterable[Feature] = (),
) -> Flask:
    """Create and configure the Flask application.

    :param settings: the shared settings; default :func:`config.load_settings`
        (the environment and ``.env``).
    :param executor: the one shared thread pool (``settings.threads`` threads),
        created by the composition root; features that run work in the
        background use it. ``None`` for an app without such features: the
        factory never creates a pool of its own.
    :param features: the features to add, in order (``server.features.FEATURES``
        in the service); none gives the bare skeleton.
    The session interface is :class:`app.session_cookies.SessionInterface`
    (Flask's signed cookie, and an ERROR for one too large for browsers).

    :returns: the :class:`~flask.Flask` app; ``app.extensions`` holds
        ``"settings"`` and ``"executor"``, and what the features add.
    :raises config.ConfigError: if the settings (the skeleton's or a feature's)
        are invalid.
    """
    settings = settings or load_settings()
    app = Flask(__name__, instance_path=str(INSTANCE_PATH))
    app.config.update(settings.flask_config())
    app.session_interface = SessionInterface()  # Flask's, plus the cookie size check
    app.extensions["settings"] = settings
    app.extensions["executor"] = executor

    register_observability(app)  # first: its before_request runs before CSRF's
    register_extensions(app)
    register_error_handlers(app)
    register_templates(app)
    register_blueprints(app)
    register_shell_context(app)
    for feature in features:
        feature.init_app(app)
    return app


def register_extensions(app: Flask) -> None:
    """Bind Flask-SQLAlchemy, Flask-Migrate, CSRF protection, the security headers
    (:mod:`app.security_headers`) and Flask-Login to ``app``.

    The engine's pool has a connection per worker thread, pinged before use
    (:func:`app.database.engine_options`).
    """
    from app import security_headers
    from app.database import configure_sqlite, engine_options, ensure_sqlite_directory
    from app.extensions import csrf, db
    from app.schema_migrations import init_migrations

    database_url = app.config["SQLALCHEMY_DATABASE_URI"]
    ensure_sqlite_directory(database_url)
    app.config.setdefault(
        "SQLALCHEMY_ENGINE_OPTIONS",
        engine_options(database_url, app.extensions["settings"].threads),
    )
    db.init_app(app)
    init_migrations(app)
    csrf.init_app(app)
    security_headers.init_app(app)
    with app.app_context():
        configure_sqlite(db.engine)


def register_observability(app: Flask) -> None:
    """``g.request_id`` on every log line of a request, the route pattern for metrics.

    See :mod:`app.observability`.
    """
    from app import observability

    observability.init_app(app)


def register_error_handlers(app: Flask) -> None:
    """JSON errors for the API, HTML pages elsewhere; see :mod:`app.errors`."""
    from app.errors import register_error_handlers as register

    register(app)


def register_templates(app: Flask) -> None:
    """Register the Jinja globals ``project_name``, ``nav_links()`` and ``native_url()``.

    ``project_name`` is ``config.defaults.PROJECT_NAME``; for the other two see
    :mod:`app.nav` and :mod:`app.native_urls`. Registered before any feature,
    whose templates may use them.
    """
    from app import native_urls, nav
    from config.defaults import PROJECT_NAME

    app.jinja_env.globals["project_name"] = PROJECT_NAME
    nav.init_app(app)
    native_urls.init_app(app)


def register_blueprints(app: Flask) -> None:
    """The skeleton's pages: the home page and accounts (:mod:`app.auth`)."""
    from app import auth
    from app.public import views

    app.register_blueprint(views.blueprint)
    auth.init_app(app)


def register_shell_context(app: Flask) -> None:
    """``manage.py shell`` starts with ``db`` and ``User`` imported (features add theirs)."""
    from app.auth.models import User
    from app.extensions import db

    def context() -> dict[str, Any]:
        return {"db": db, "User": User}

    app.shell_context_processor(context)
