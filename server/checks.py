"""Start-up checks: each failure is one :class:`StartupError` line saying what to do.

``manage.py serve`` prints it as ``Error: ...`` and exits with status 1.
"""

from __future__ import annotations

import errno
import socket

import sqlalchemy
import tornado.netutil
from flask import Flask
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError


class StartupError(Exception):
    """The server cannot start; ``str(error)`` is one line saying why and what to do."""


def check_database(flask_app: Flask) -> None:
    """Check that ``flask_app``'s database answers and every branch is at its head.

    The skeleton's branch and each feature's (``app.schema_migrations.head_revisions``)
    must all be applied. Blocking (one connection): call it before the server
    starts.

    :raises StartupError: an in-memory SQLite database (:func:`check_database_url`),
        ``cannot connect to the database (DATABASE_URL): ...``,
        ``the database is not migrated (at revision R, head is H): run python
        manage.py db upgrade``, or a revision recorded that no folder provides.
    """
    from app.schema_migrations import head_revisions

    current, missing = check_known_revisions(flask_app)
    if missing:
        where = f"at revision {_revisions(current)}" if current else "no revision yet"
        raise StartupError(
            f"the database is not migrated ({where}, head is "
            f"{_revisions(head_revisions(flask_app))}): run python manage.py db upgrade"
        )


IN_MEMORY_DATABASE = (
    "DATABASE_URL: an in-memory SQLite database cannot be served: each connection opens "
    "its own empty database, or the threads share one connection, which is not safe; "
    "use a file, e.g. sqlite:///instance/app.db"
)
"""Why :func:`check_database_url` refuses an in-memory SQLite database."""


def check_database_url(database_url: str) -> None:
    """Refuse a database a server or worker process cannot share between threads.

    An in-memory SQLite database (:func:`app.database.sqlite_in_memory`) exists
    once per connection, so the engine shares one connection between every
    thread; SQLite's driver does not make that safe: under concurrent requests
    writes were lost and requests failed (``ResourceClosedError``). Tests that
    build an app in their own process may still use one.

    :param database_url: ``DATABASE_URL`` (a SQLAlchemy URL string).
    :raises StartupError: :data:`IN_MEMORY_DATABASE`, for an in-memory SQLite URL.
    """
    from app.database import sqlite_in_memory

    if sqlite_in_memory(database_url):
        raise StartupError(IN_MEMORY_DATABASE)


def check_known_revisions(flask_app: Flask) -> tuple[set[str], set[str]]:
    """Check that every revision the database records has its migration folder.

    Call it before migrating too (``serve`` in development): Alembic itself
    would only say "Can't locate revision". First, :func:`check_database_url`.

    A SQLite file that does not exist yet records nothing, and is not created.

    :returns: ``(recorded, missing)``: the ``alembic_version`` rows, and the
        revisions still to apply.
    :raises StartupError: if the database is in memory, cannot be reached, or
        records a revision that no folder provides (a feature deleted before its
        tables were downgraded), saying how to recover.
    """
    from app.database import sqlite_file
    from app.extensions import db
    from app.schema_migrations import unapplied_revisions

    database_url = str(flask_app.config["SQLALCHEMY_DATABASE_URI"])
    check_database_url(database_url)
    path = sqlite_file(database_url)
    if path is not None and not path.exists():
        # Connecting would create an empty file: a refused start would leave it behind.
        return set(), unapplied_revisions(flask_app, set())[0]
    try:
        with flask_app.app_context(), db.engine.connect() as connection:
            current: set[str] = set()
            # Alembic's own version table, read directly: MigrationContext would log.
            if sqlalchemy.inspect(connection).has_table("alembic_version"):
                current = set(connection.scalars(text("SELECT version_num FROM alembic_version")))
    except DBAPIError as error:
        raise StartupError(database_error_message(error)) from None
    missing, unknown = unapplied_revisions(flask_app, current)
    if unknown:
        raise StartupError(
            f"the database is at revision {_revisions(unknown)}, which no migration folder "
            "provides (a feature deleted before its tables were downgraded?): restore the "
            "folder and run python manage.py db downgrade <branch>@base, or drop its tables "
            "and run python manage.py db stamp --purge heads"
        )
    return current, missing


def _revisions(revisions: set[str]) -> str:
    return ", ".join(sorted(revisions))


def database_error_message(error: DBAPIError) -> str:
    """One line for a database that cannot be reached: the driver's first line.

    :param error: what SQLAlchemy raised when connecting.
    """
    detail = str(error.orig or error).strip().splitlines()
    return f"cannot connect to the database (DATABASE_URL): {detail[0] if detail else error}"


def bind(host: str, port: int) -> list[socket.socket]:
    """Open the listening sockets for ``host:port`` (``port`` 0 picks a free one).

    :returns: one socket per address ``host`` resolves to.
    :raises StartupError: naming the address, the reason and the variable to
        change, e.g. ``cannot listen on 127.0.0.1:8000: address already in
        use (set PORT or HOST)``.
    """
    where = f"cannot listen on {host}:{port}"
    try:
        return tornado.netutil.bind_sockets(port, host)
    except socket.gaierror as error:
        raise StartupError(
            f"{where}: HOST {host!r} is not an IP address or a known host name "
            f"({error.strerror}; set HOST)"
        ) from None
    except OSError as error:
        reasons = {
            errno.EADDRINUSE: "address already in use (set PORT or HOST)",
            errno.EADDRNOTAVAIL: "no interface of this machine has that address (set HOST)",
            errno.EACCES: "permission denied (ports below 1024 need privileges; set PORT)",
        }
        reason = reasons.get(error.errno or 0, f"{error.strerror or error} (set PORT or HOST)")
        raise StartupError(f"{where}: {reason}") from None
