"""Account operations shared by the Flask views and the native handlers."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.auth.models import User
from app.database import AnySession
from app.extensions import db


class EmailTaken(ValueError):
    """Registration failed: an account with this email already exists."""


def normalize_email(email: str) -> str:
    """Return ``email`` as stored: surrounding spaces removed, lower-case."""
    return email.strip().lower()


def register_user(email: str, password: str) -> User:
    """Create and commit an account (inside a Flask app or request context).

    :param email: any case; stored normalized (:func:`normalize_email`).
    :param password: plain text; only its hash is stored.
    :returns: the new :class:`~app.auth.models.User`.
    :raises EmailTaken: if the email is already registered (checked first, and
        again by the unique constraint for concurrent registrations); nothing
        is written.
    """
    email = normalize_email(email)
    if db.session.scalar(select(User.id).where(User.email == email)) is not None:
        raise EmailTaken(email)
    user = User(email=email)
    user.set_password(password)
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise EmailTaken(email) from None
    return user


def authenticate(email: str, password: str) -> User | None:
    """Return the user with this email and password, or ``None`` if either is wrong."""
    user: User | None = db.session.scalar(select(User).where(User.email == normalize_email(email)))
    if user is None or not user.check_password(password):
        return None
    return user


def user_data(session: AnySession, user_id: int) -> dict[str, Any] | None:
    """Return ``User.to_dict()`` for ``user_id``, or ``None`` if there is no such user.

    For native handlers (:meth:`tornado_handlers.base.BaseHandler.run_in_session`):
    takes the session explicitly and returns plain data.
    """
    user = session.get(User, user_id)
    return None if user is None else user.to_dict()
