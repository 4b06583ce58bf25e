"""Register, log in, log out: HTML pages served by Flask (``/auth/...``)."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_user, logout_user
from werkzeug.wrappers import Response

from app.auth.forms import LoginForm, RegisterForm
from app.auth.service import EmailTaken, authenticate, register_user

blueprint = Blueprint("auth", __name__, url_prefix="/auth")


def _next_url() -> str:
    """Where to go after logging in: a local ``?next=`` path, else the home page.

    Only paths on this site are followed (``/x``, not ``//evil`` or
    ``https://evil``), so the login page cannot be used as an open redirect.
    """
    target = request.args.get("next", "")
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("public.index")


@blueprint.route("/register", methods=["GET", "POST"])
def register() -> Response | tuple[str, int] | str:
    """Create an account and log it in; 422 with the form's errors otherwise."""
    form = RegisterForm()
    if form.validate_on_submit():
        try:
            user = register_user(form.email.data or "", form.password.data or "")
        except EmailTaken:
            form.email.errors = [*form.email.errors, "This email is already registered."]
        else:
            login_user(user)
            flash(f"Welcome, {user.email}.", "success")
            return redirect(url_for("public.index"))
    page = render_template("auth/register.html", form=form)
    return (page, 422) if form.is_submitted() else page


@blueprint.route("/login", methods=["GET", "POST"])
def login() -> Response | tuple[str, int] | str:
    """Log in with email and password; 422 with one vague message on failure.

    The message does not say whether the email exists (no account enumeration).
    """
    form = LoginForm()
    if form.validate_on_submit():
        user = authenticate(form.email.data or "", form.password.data or "")
        if user is not None:
            login_user(user)
            flash(f"Logged in as {user.email}.", "success")
            return redirect(_next_url())
        form.form_errors.append("Wrong email or password.")
    page = render_template("auth/login.html", form=form)
    return (page, 422) if form.is_submitted() else page


@blueprint.post("/logout")
def logout() -> Response:
    """Forget the logged-in user (POST with a CSRF token) and go home."""
    if current_user.is_authenticated:
        logout_user()
        flash("Logged out.", "success")
    return redirect(url_for("public.index"))
