"""The account forms (Flask-WTF: every POST carries a CSRF token)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, EqualTo, Length, Regexp

from app.validation import NoControlCharacters

_EMAIL = Regexp(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", message="Enter an email address.")


def _strip(value: str | None) -> str | None:
    return value.strip() if value else value


class AccountForm(FlaskForm):
    """A form whose every field refuses control characters (:class:`NoControlCharacters`).

    The check the JSON API makes on free text (:func:`app.validation.plain_text`);
    without it a NUL in the email reached the database query (a 500 on PostgreSQL).
    """

    def validate(self, extra_validators: Mapping[str, Sequence[Any]] | None = None) -> bool:
        """Validate every field, each with :class:`NoControlCharacters` added to its validators.

        :param extra_validators: more validators by field name (WTForms' argument).
        :returns: whether every field is valid; errors are on the fields.
        """
        extra = {name: [NoControlCharacters()] for name in self._fields}
        for name, more in (extra_validators or {}).items():
            extra.setdefault(name, []).extend(more)
        return bool(super().validate(extra_validators=extra))


class LoginForm(AccountForm):
    """Email and password."""

    email = EmailField(
        "Email", filters=[_strip], validators=[DataRequired(), Length(max=254), _EMAIL]
    )
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])


class RegisterForm(AccountForm):
    """Email, and the password typed twice (8 to 200 characters)."""

    email = EmailField(
        "Email", filters=[_strip], validators=[DataRequired(), Length(max=254), _EMAIL]
    )
    password = PasswordField("Password", validators=[DataRequired(), Length(min=8, max=200)])
    confirm = PasswordField(
        "Repeat password",
        validators=[DataRequired(), EqualTo("password", "Passwords differ.")],
    )
