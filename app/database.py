"""The SQLAlchemy side shared by Flask views, native handlers and Alembic.

* :class:`Base` -- the declarative base; its ``metadata`` is the only one.
* :func:`configure_sqlite` -- WAL, busy timeout and foreign keys on every new
  SQLite connection, so the thread pool does not trip over ``database is locked``.
* :func:`call_in_session` -- run a function with a session bound to the Flask
  app, commit on success, roll back on error, always clean up. Native Tornado
  handlers call it on the shared executor (see ``tornado_handlers.base``).
* :func:`init_migrations` / :func:`add_migrations` -- Alembic through
  Flask-Migrate: the skeleton's revisions in ``migrations/versions``, each
  feature's in a version location of its own, on its own branch.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from flask import Flask, current_app
from sqlalchemy import Engine, MetaData, event
from sqlalchemy.orm import DeclarativeBase, Session

from config import PROJECT_ROOT

if TYPE_CHECKING:
    from alembic.config import Config

T = TypeVar("T")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

MIGRATIONS_DIRECTORY = PROJECT_ROOT / "migrations"
"""Alembic's environment (``env.py``, ``alembic.ini``) and the skeleton's ``versions/``."""

MIGRATION_LOCATIONS_KEY = "migration_locations"
"""Where the version locations live: ``flask_app.extensions["migration_locations"]``."""

SQLITE_BUSY_TIMEOUT_MS = 5000
"""How long (milliseconds) a SQLite connection waits for a lock before failing."""


def utcnow() -> datetime:
    """Return the current time as an aware UTC :class:`~datetime.datetime` (column defaults)."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of every model (SQLAlchemy 2.x typed ``Mapped`` style).

    Constraint names follow :data:`NAMING_CONVENTION` so Alembic can drop and
    alter them by name on every backend.
    """

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def configure_sqlite(engine: Engine) -> None:
    """Apply the pragmas a threaded server needs to each new SQLite connection.

    ``journal_mode=WAL`` lets readers run beside one writer;
    ``busy_timeout`` makes a writer wait for the lock instead of failing at
    once; ``foreign_keys=ON`` enforces the schema's foreign keys (SQLite leaves
    them off by default). See https://www.sqlite.org/wal.html and
    https://www.sqlite.org/pragma.html. Does nothing for other backends.

    :param engine: the engine whose future connections to configure.
    """
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()


def call_in_session(flask_app: Flask, fn: Callable[[Session], T]) -> T:
    """Run ``fn(session)`` in a unit of work, in the calling (worker) thread.

    Pushes an app context of ``flask_app`` (Flask-SQLAlchemy 3 ties
    ``db.session`` to one), calls ``fn`` with ``db.session``, commits if it
    returns, rolls back if it raises, and always removes the session and pops
    the context, so nothing leaks to the next call on this thread.

    Blocking: call it from a worker thread, never on the IOLoop thread.

    :param flask_app: the Flask application whose database to use.
    :param fn: a callable taking the :class:`~sqlalchemy.orm.Session`; its
        return value is returned. Return plain data (dicts), not ORM objects:
        they are expired once the session closes.
    :returns: what ``fn`` returned, after the commit.
    :raises Exception: whatever ``fn`` or the commit raised, after the rollback.
    """
    from app.extensions import db

    with flask_app.app_context():
        session = db.session
        try:
            result = fn(session)
            session.commit()
            return result
        except BaseException:
            session.rollback()
            raise
        finally:
            db.session.remove()


def init_migrations(flask_app: Flask) -> None:
    """Bind Flask-Migrate to ``flask_app``: ``migrations/``, batch mode, type comparison.

    The skeleton's revisions live in ``migrations/versions`` (branch ``app``);
    features add their own version locations with :func:`add_migrations`.
    ``render_as_batch`` lets the same revisions alter tables on SQLite.
    """
    from app.extensions import db, migrate

    if _version_locations not in migrate.configure_callbacks:
        migrate.configure(_version_locations)
    migrate.init_app(
        flask_app,
        db,
        directory=str(MIGRATIONS_DIRECTORY),
        render_as_batch=True,
        compare_type=True,
    )
    flask_app.extensions[MIGRATION_LOCATIONS_KEY] = [MIGRATIONS_DIRECTORY / "versions"]


def add_migrations(flask_app: Flask, location: Path) -> None:
    """Add a feature's folder of Alembic revisions (a version location) to ``flask_app``.

    The folder's first revision has ``down_revision = None`` and a branch label
    of the feature's name, so the feature's history is a branch of its own:
    deleting the folder leaves the skeleton's history linear and whole.

    :param location: an existing directory of revision files.
    """
    flask_app.extensions[MIGRATION_LOCATIONS_KEY].append(location)


def _version_locations(config: Config) -> Config:
    """Flask-Migrate configure callback: Alembic's ``version_locations`` of the current app."""
    locations: list[Path] = current_app.extensions[MIGRATION_LOCATIONS_KEY]
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", os.pathsep.join(str(p) for p in locations))
    return config


def alembic_config(flask_app: Flask) -> Config:
    """Return the Alembic :class:`~alembic.config.Config` Flask-Migrate uses for ``flask_app``.

    Needs an app context of ``flask_app`` only while it is built.
    """
    with flask_app.app_context():
        config: Config = flask_app.extensions["migrate"].migrate.get_config()
    return config


def head_revisions(flask_app: Flask) -> set[str]:
    """Return the head revision of every branch (the skeleton's and each feature's)."""
    from alembic.script import ScriptDirectory

    return set(ScriptDirectory.from_config(alembic_config(flask_app)).get_heads())


def upgrade_database(flask_app: Flask) -> None:
    """Apply every Alembic migration of every branch to ``flask_app``'s database.

    ``db upgrade heads``. Creates the directory of a SQLite database file
    first. Used by ``serve`` in development and by the tests; deployments run
    ``manage.py db upgrade heads``.
    """
    from flask_migrate import upgrade

    ensure_sqlite_directory(flask_app.config["SQLALCHEMY_DATABASE_URI"])
    with flask_app.app_context():
        upgrade(revision="heads")


def ensure_sqlite_directory(database_url: str) -> None:
    """Create the directory of a SQLite database file if it is missing.

    SQLite creates the file but not its directory; without this, the first
    ``manage.py db upgrade`` on a fresh clone fails with "unable to open database
    file" because ``instance/`` does not exist yet. Does nothing for other backends
    and for in-memory databases.

    :param database_url: a SQLAlchemy URL string.
    """
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
