"""The ``User`` model: an account that logs in with an email and a password."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import current_app
from flask_login import UserMixin
from sqlalchemy import DateTime, String
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from app.database import utcnow
from app.extensions import db


class User(UserMixin, db.Model):  # type: ignore[name-defined]
    """An account. ``email`` is unique and stored lower-case.

    The password is never stored: :attr:`password_hash` holds Werkzeug's
    salted hash (``method$salt$hash``, see :func:`werkzeug.security.generate_password_hash`).
    :class:`flask_login.UserMixin` supplies ``is_authenticated`` and
    ``get_id()`` (the id as a string, which Flask-Login keeps in the session).
    """

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    def set_password(self, password: str) -> None:
        """Hash ``password`` with the app's ``PASSWORD_HASH_METHOD`` and keep the hash.

        Needs an app context (it reads the method from ``current_app.config``).
        """
        method = current_app.config.get("PASSWORD_HASH_METHOD", "scrypt")
        self.password_hash = generate_password_hash(password, method=method)

    def check_password(self, password: str) -> bool:
        """Whether ``password`` matches the stored hash (constant-time compare)."""
        return check_password_hash(self.password_hash, password)

    def to_dict(self) -> dict[str, Any]:
        """Return the public fields as JSON-ready data: ``{"id": int, "email": str}``.

        The one representation of a user for both sides (``GET /api/me``, the
        WebSocket ``hello``); it never includes the password hash.
        """
        return {"id": self.id, "email": self.email}

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email}>"


def load_user(user_id: str) -> User | None:
    """Flask-Login's user loader: the user whose id the session holds, or ``None``.

    :param user_id: the string Flask-Login stored under ``_user_id``.
    :returns: the user, or ``None`` (anonymous) for an unknown or malformed id.
    """
    try:
        return db.session.get(User, int(user_id))
    except ValueError:
        return None
