"""The account forms (Flask-WTF: every POST carries a CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, EqualTo, Length, Regexp

_EMAIL = Regexp(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", message="Enter an email address.")


def _strip(value: str | None) -> str | None:
    return value.strip() if value else value


class LoginForm(FlaskForm):
    """Email and password."""

    email = EmailField(
        "Email", filters=[_strip], validators=[DataRequired(), Length(max=254), _EMAIL]
    )
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])


class RegisterForm(FlaskForm):
    """Email, and the password typed twice (8 to 200 characters)."""

    email = EmailField(
        "Email", filters=[_strip], validators=[DataRequired(), Length(max=254), _EMAIL]
    )
    password = PasswordField("Password", validators=[DataRequired(), Length(min=8, max=200)])
    confirm = PasswordField(
        "Repeat password", validators=[DataRequired(), EqualTo("password", "Passwords differ.")]
    )
