"""Flask extensions, created unbound and bound to an app in :func:`app.create_app`."""

from __future__ import annotations

from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect

from app.database import Base

db = SQLAlchemy(model_class=Base)
"""Flask-SQLAlchemy: ``db.session`` in views, ``db.engine``; one metadata (``Base.metadata``)."""

migrate = Migrate()
"""Flask-Migrate: Alembic driven by ``manage.py db ...``, scripts in ``migrations/``."""

csrf = CSRFProtect()
"""CSRF protection for HTML forms (the JSON API is exempt; it takes no cookies-only writes)."""

login_manager = LoginManager()
"""Flask-Login: the logged-in user's id lives in Flask's session (see :mod:`app.auth`)."""
