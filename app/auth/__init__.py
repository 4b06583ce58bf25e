"""Accounts and the login flow (Flask side): register, log in, log out.

Flask-Login keeps the logged-in user's id in Flask's signed-cookie session
(key ``_user_id``); native Tornado handlers read the same cookie through
:mod:`tornado_handlers.flask_session`, so one login serves both sides.
"""

from __future__ import annotations

from flask import Flask

CHEAP_TEST_HASH = "pbkdf2:sha256:1000"
"""Password hashing used when ``TESTING`` is on: fast, and never for real passwords."""


def init_app(app: Flask) -> None:
    """Bind Flask-Login to ``app`` and mount the ``auth`` blueprint.

    Sets ``PASSWORD_HASH_METHOD`` (a Werkzeug ``generate_password_hash``
    method) unless configured: ``scrypt`` (Werkzeug's default), or the cheap
    :data:`CHEAP_TEST_HASH` when ``TESTING`` is on so tests stay fast.
    """
    from app.auth import views
    from app.auth.models import load_user
    from app.extensions import login_manager

    app.config.setdefault("PASSWORD_HASH_METHOD", CHEAP_TEST_HASH if app.testing else "scrypt")
    login_manager.init_app(app)
    login_manager.user_loader(load_user)
    login_manager.login_view = "auth.login"
    login_manager.login_message_category = "error"
    app.register_blueprint(views.blueprint)
