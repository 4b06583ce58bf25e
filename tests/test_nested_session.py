"""``call_in_session`` inside a unit of work that has written joins it (issue 15).

Before, a nested call opened a second session on a second connection: on
SQLite the outer session's uncommitted write holds the database's write lock,
so the inner write waited ``SQLITE_BUSY_TIMEOUT_MS`` (5 s) and failed with
"database is locked"; on PostgreSQL an inner write to a row the outer one
changed waits for a lock the outer never releases. Now the inner call runs in
the outer session and the outer commits (or rolls back) both.
"""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.auth.models import User
from app.database import call_in_session
from app.extensions import db


def user(email: str) -> User:
    """A user row with a placeholder hash (no login needed)."""
    return User(email=email, password_hash="x")


def emails(flask_app: Flask) -> list[str]:
    """The users' emails, as committed: read on a connection of their own."""
    with flask_app.app_context():
        engine = db.engine
    with engine.connect() as connection:
        return list(connection.scalars(select(User.email).order_by(User.email)))


def test_an_inner_write_joins_the_outer_uncommitted_write(flask_app: Flask) -> None:
    with flask_app.app_context():
        db.session.add(user("outer@example.com"))
        db.session.flush()  # the outer transaction has written (SQLite: holds the write lock)

        def inner(session: Session) -> int:
            session.add(user("inner@example.com"))
            session.flush()
            return session.scalar(select(func.count()).select_from(User)) or 0

        assert call_in_session(flask_app, inner) == 2  # sees the outer's row: one transaction
        assert emails(flask_app) == []  # nothing committed by the inner call
        db.session.commit()
    assert emails(flask_app) == ["inner@example.com", "outer@example.com"]


def test_the_outer_rollback_undoes_the_inner_write(flask_app: Flask) -> None:
    with flask_app.app_context():
        db.session.add(user("outer@example.com"))
        db.session.flush()
        call_in_session(flask_app, lambda session: session.add(user("inner@example.com")))
        db.session.rollback()
    assert emails(flask_app) == []


def test_an_inner_update_of_a_row_the_outer_changed_does_not_wait(flask_app: Flask) -> None:
    call_in_session(flask_app, lambda session: session.add(user("a@example.com")))
    with flask_app.app_context():
        db.session.execute(update(User).values(password_hash="outer"))  # row locked (PG)

        def inner(session: Session) -> None:
            session.execute(update(User).values(email="b@example.com"))

        call_in_session(flask_app, inner)
        db.session.commit()
    assert emails(flask_app) == ["b@example.com"]


def test_without_a_write_in_progress_the_inner_call_is_its_own_unit_of_work(
    flask_app: Flask,
) -> None:
    with flask_app.app_context():
        db.session.scalars(select(User)).all()  # the outer session only read
        call_in_session(flask_app, lambda session: session.add(user("inner@example.com")))
        assert emails(flask_app) == ["inner@example.com"]  # committed by the inner call
        db.session.rollback()
    assert emails(flask_app) == ["inner@example.com"]


def test_an_error_in_a_joined_call_is_raised_to_the_outer(flask_app: Flask) -> None:
    with flask_app.app_context():
        db.session.add(user("outer@example.com"))
        db.session.flush()

        def fails(session: Session) -> None:
            session.add(user("inner@example.com"))
            raise LookupError("inner")

        with pytest.raises(LookupError):
            call_in_session(flask_app, fails)
        db.session.rollback()  # the outer owns the transaction: it decides
    assert emails(flask_app) == []
