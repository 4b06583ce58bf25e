"""The SQLAlchemy side shared by Flask views, native handlers and Alembic.

* :class:`Base` -- the declarative base; its ``metadata`` is the only one.
* :func:`configure_sqlite` -- WAL, busy timeout and foreign keys on every new
  SQLite connection, so the thread pool does not trip over ``database is locked``.
* :func:`engine_options` -- the engine's pool: one connection per worker
  thread, each pinged when taken from the pool, so a database restart costs
  no failed request.
* :func:`call_in_session` -- run a function with a session bound to the Flask
  app, commit on success, roll back on error, always clean up; retried once
  if its connection turns out dead before any statement ran. Native Tornado
  handlers call it on the shared executor (see ``tornado_handlers.base``).
  Called inside a unit of work of the same app that has written, it joins it.

Alembic's set-up (branches, version locations) is :mod:`app.schema_migrations`.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from flask import Flask, current_app, has_app_context
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import Connection, Engine, MetaData, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import (
    DeclarativeBase,
    ORMExecuteState,
    Session,
    SessionTransaction,
    scoped_session,
)
from sqlalchemy.sql.elements import TextClause

from config import ConfigError

T = TypeVar("T")

AnySession = Session | scoped_session[Any]
"""A session, or Flask-SQLAlchemy's ``db.session`` (a ``scoped_session`` standing for one)."""

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SQLITE_BUSY_TIMEOUT_MS = 5000
"""How long (milliseconds) a SQLite connection waits for a lock before failing."""


POOL_OVERFLOW = 10
"""Connections a process may open beyond one per worker thread (SQLAlchemy's default
``max_overflow``), for threads outside the shared pool: a feature's own timer
thread, start-up checks, ``manage.py shell``. Closed again when returned."""


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


def engine_options(database_url: str, threads: int) -> dict[str, Any]:
    """Return the ``create_engine`` options (Flask-SQLAlchemy's ``SQLALCHEMY_ENGINE_OPTIONS``).

    * ``pool_pre_ping``: each connection is tested when taken from the pool,
      and replaced if the database closed it (a restart, a failover, an idle
      timeout), before any statement runs; when one is found dead, every
      connection older than it is replaced too ("Dealing with Disconnects --
      pessimistic" in SQLAlchemy's pooling docs).
    * ``pool_size``: one connection per worker thread of the shared executor
      (``THREADS``): every Flask request, native handler and background job runs on
      one of them, so they never wait for a connection. SQLAlchemy's default
      (5, plus 10 overflow) made the 16th concurrent job at ``THREADS=16``
      wait 30 seconds and fail. ``max_overflow`` is :data:`POOL_OVERFLOW`.

    SQLite files get a ``QueuePool`` too (SQLAlchemy 2.0 and later), sized the
    same way; an in-memory SQLite database keeps Flask-SQLAlchemy's single
    shared connection (``StaticPool``), which takes no size.

    :param database_url: the SQLAlchemy URL (``DATABASE_URL``).
    :param threads: the worker threads of the shared executor (``THREADS``).
    :returns: keyword arguments of :func:`sqlalchemy.create_engine`.
    """
    options: dict[str, Any] = {"pool_pre_ping": True}
    if not sqlite_in_memory(database_url):
        options.update(pool_size=threads, max_overflow=POOL_OVERFLOW)
    return options


WROTE = "app.database.wrote"
"""``Session.info`` key: the session's transaction has written (flushed or executed DML)."""

_READ_ONLY_TEXT = re.compile(r"\s*(SELECT|WITH|PRAGMA|SHOW|EXPLAIN)\b", re.IGNORECASE)


@event.listens_for(Session, "after_flush")
def _flushed(session: Session, _context: Any) -> None:
    session.info[WROTE] = True


@event.listens_for(Session, "do_orm_execute")
def _executed(state: ORMExecuteState) -> None:
    statement = state.statement
    dml = state.is_insert or state.is_update or state.is_delete
    if dml or (isinstance(statement, TextClause) and not _READ_ONLY_TEXT.match(statement.text)):
        state.session.info[WROTE] = True


AFTER_COMMIT = "app.database.after_commit"
"""``Session.info`` key: callables to run once the session's transaction commits."""


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    for callback in session.info.pop(AFTER_COMMIT, []):
        callback()


@event.listens_for(Session, "after_transaction_end")
def _ended(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the outermost transaction: committed or rolled back
        session.info.pop(WROTE, None)
        session.info.pop(AFTER_COMMIT, None)  # rolled back: what it would have done is dropped


def after_commit(flask_app: Flask, callback: Callable[[], None]) -> None:
    """Run ``callback`` once the work of the last :func:`call_in_session` is committed.

    For side effects that must follow the commit (publish an event, hand a row's
    id to another thread or process, which reads the row). When that call was
    its own unit of work, it has committed: ``callback`` runs now. When it
    joined an outer session with uncommitted writes (see *Nested calls* in
    :func:`call_in_session`), ``callback`` runs when the outer code commits,
    after the commit, in the committing thread; if the outer code rolls back, it
    never runs. Callbacks run in the order they were registered; an exception
    from one is raised to the code that committed (the commit has happened).

    :param flask_app: the application :func:`call_in_session` was called with.
    :param callback: a callable taking no arguments.
    """
    outer = writing_session(flask_app)
    if outer is None:
        callback()
    else:
        outer.info.setdefault(AFTER_COMMIT, []).append(callback)


def writing_session(flask_app: Flask) -> Session | None:
    """Return the session of ``flask_app``'s active app context if it has uncommitted writes.

    Uncommitted writes: objects added, changed or deleted and not yet flushed,
    or a flush or a DML statement (``insert``/``update``/``delete``, or a
    ``text()`` that is not a ``SELECT``) in the transaction under way. Such a
    transaction holds locks (SQLite's write lock, PostgreSQL's row locks) that a
    second session would wait for, so :func:`call_in_session` joins it instead.

    :param flask_app: the application whose app context to look for (another
        app's context does not count).
    :returns: the session (``db.session()`` of that context), or ``None`` when no
        app context of ``flask_app`` is active or its session has not written.
    """
    if not has_app_context() or current_app._get_current_object() is not flask_app:  # type: ignore[attr-defined]
        return None
    db: SQLAlchemy = flask_app.extensions["sqlalchemy"]
    session = db.session()
    if session.info.get(WROTE) or session.new or session.dirty or session.deleted:
        return session
    return None


def call_in_session(flask_app: Flask, fn: Callable[[Session], T]) -> T:
    """Run ``fn(session)`` in a unit of work, in the calling (worker) thread.

    Pushes an app context of ``flask_app`` (Flask-SQLAlchemy 3 ties
    ``db.session`` to one), calls ``fn`` with ``db.session``, commits if it
    returns, rolls back if it raises, and always removes the session and pops
    the context, so nothing leaks to the next call on this thread.

    If the connection turns out to be dead (the database restarted, or closed
    it) on the unit of work's first statement, the database has done nothing:
    the unit of work is run again, once, on a new connection. A disconnect
    after a statement succeeded, or during the commit, is not retried (the
    work may have been done): it is raised. So ``fn`` may be called twice;
    keep it to database work, with side effects elsewhere after it returns.

    **Nested calls.** Called while an app context of ``flask_app`` is active
    whose session has uncommitted writes (:func:`writing_session`: a Flask
    view, or an outer unit of work, that added or changed rows and has not
    committed), ``fn`` runs in *that* session and its changes are flushed, not
    committed: the outer code owns the transaction and commits or rolls back
    both (an exception from ``fn`` is raised to it, nothing rolled back here).
    Side effects that must follow the commit go through :func:`after_commit`,
    which defers them to the outer commit in this case.
    A second session would wait for the outer one's locks: on SQLite "database
    is locked" after ``SQLITE_BUSY_TIMEOUT_MS``, on PostgreSQL for ever. Without
    such writes (no app context, or one that only read), the call is its own
    unit of work, as described above, committed when it returns.

    Blocking: call it from a worker thread, never on the IOLoop thread.

    :param flask_app: the Flask application whose database to use.
    :param fn: a callable taking the :class:`~sqlalchemy.orm.Session`; its
        return value is returned. Return plain data (dicts), not ORM objects:
        they are expired once the session closes.
    :returns: what ``fn`` returned, after the commit (or, joined, the flush).
    :raises Exception: whatever ``fn``, the flush or the commit raised, after the
        rollback (joined: without one; the outer code decides).
    """
    outer = writing_session(flask_app)
    if outer is not None:
        result = fn(outer)
        outer.flush()
        return result
    db: SQLAlchemy = flask_app.extensions["sqlalchemy"]
    for attempt in (1, 2):
        with flask_app.app_context():
            session = db.session
            statements: list[None] = []
            try:
                statements = _count_statements(session.connection())  # pinged, then counted
                result = fn(session())
                session.commit()
                return result
            except DBAPIError as error:
                session.rollback()
                if attempt == 1 and error.connection_invalidated and not statements:
                    continue  # nothing was done: once more, on a new connection
                raise
            except BaseException:
                session.rollback()
                raise
            finally:
                db.session.remove()
    raise AssertionError("unreachable: the second attempt returns or raises")


def _count_statements(connection: Connection) -> list[None]:
    """Return a list that grows by one each time a statement on ``connection`` succeeds."""
    done: list[None] = []

    @event.listens_for(connection, "after_cursor_execute")
    def _done(*_args: Any) -> None:
        done.append(None)

    return done


def sqlite_in_memory(database_url: str) -> bool:
    """Whether ``database_url`` names an in-memory SQLite database.

    ``sqlite://``, ``sqlite:///:memory:``, a ``file:`` URI with ``mode=memory``, and
    ``sqlite:///file::memory:?uri=true`` (https://www.sqlite.org/inmemorydb.html). Each connection
    to one opens its own empty database, so the engine keeps one connection
    shared by every thread (``StaticPool``): fine for a test in one process,
    not for a server (:func:`server.checks.check_database_url` refuses it).

    :param database_url: a SQLAlchemy URL string.
    """
    url = make_url(database_url)
    database = url.database or ""
    return (
        url.get_backend_name() == "sqlite"
        and (
            database in ("", ":memory:")
            or url.query.get("mode") == "memory"
            # A file: URI names its database after "file:"; ":memory:" there is memory too.
            or (database.startswith("file:") and database[5:].split("?")[0] == ":memory:")
        )
    )


def sqlite_file(database_url: str) -> Path | None:
    """Return the file of a SQLite database URL; ``None`` for other backends and in-memory ones.

    Connecting to SQLite creates a missing file, so a check that only wants to
    know whether a database is migrated looks for the file first
    (:func:`server.checks.check_known_revisions`): a refused start must not
    leave an empty database behind.

    :param database_url: a SQLAlchemy URL string, e.g. ``sqlite:///instance/production.db``.
    :returns: the path as written (relative to the working directory, as SQLite
        opens it); ``None`` also for a ``file:`` URI (``?uri=true``).
    """
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    if url.query.get("mode") == "memory" or url.query.get("uri"):
        return None  # in memory, or a file: URI (its path is not the database's text)
    return Path(url.database)


def ensure_sqlite_directory(database_url: str) -> None:
    """Create the directory of a SQLite database file if it is missing.

    SQLite creates the file but not its directory; without this, the first
    ``manage.py db upgrade`` on a fresh clone fails with "unable to open database
    file" because ``instance/`` does not exist yet. Does nothing for other backends
    and for in-memory databases.

    :param database_url: a SQLAlchemy URL string.
    :raises config.ConfigError: naming ``DATABASE_URL`` if the folder cannot be created.
    """
    path = sqlite_file(database_url)
    if path is not None:
        folder = path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(
                f"DATABASE_URL: cannot create the folder of the SQLite file, {folder} "
                f"({error.strerror or error})"
            ) from None
