"""Accounts: register, log in, log out through the Flask pages (WebTest, WSGI level)."""

from __future__ import annotations

import webtest
from flask import Flask
from sqlalchemy import select

from app.auth.models import User
from app.extensions import db


def text_of(page: webtest.TestResponse, selector: str) -> str | None:
    """The text of the element ``selector`` picks, or ``None`` when there is none."""
    element = page.html.select_one(selector)
    return None if element is None else element.get_text(strip=True)


def register(
    testapp: webtest.TestApp, email: str, password: str = "correct horse"
) -> webtest.TestResponse:
    """Fill in and submit the registration form; the response (errors not raised)."""
    form = testapp.get("/auth/register").forms["register"]
    form["email"] = email
    form["password"] = password
    form["confirm"] = password
    return form.submit(expect_errors=True)


def log_in(
    testapp: webtest.TestApp, email: str, password: str, next_url: str = ""
) -> webtest.TestResponse:
    """Fill in and submit the login form (``?next=next_url`` if given); the response."""
    page = testapp.get("/auth/login" + (f"?next={next_url}" if next_url else ""))
    form = page.forms["login"]
    form["email"] = email
    form["password"] = password
    return form.submit(expect_errors=True)


def test_register_logs_in_and_stores_only_a_hash(
    testapp: webtest.TestApp, flask_app: Flask
) -> None:
    home = register(testapp, " Ada@Example.COM ").follow()
    assert text_of(home, "#current-user") == "ada@example.com"
    assert "Welcome, ada@example.com." in home.text
    with flask_app.app_context():
        user = db.session.scalars(select(User)).one()
        assert user.email == "ada@example.com"
        assert "correct horse" not in user.password_hash
        assert user.check_password("correct horse")
        assert not user.check_password("wrong")


def test_register_rejects_a_taken_email_and_bad_input(testapp: webtest.TestApp) -> None:
    register(testapp, "ada@example.com")
    testapp.reset()
    again = register(testapp, "ADA@example.com")
    assert again.status_code == 422
    assert "This email is already registered." in again.text
    short = register(testapp, "bob@example.com", "short")
    assert short.status_code == 422
    assert "Field must be between 8 and 200 characters long." in short.text
    bad = register(testapp, "not-an-email")
    assert bad.status_code == 422
    assert "Enter an email address." in bad.text


def test_log_in_and_out(testapp: webtest.TestApp) -> None:
    register(testapp, "ada@example.com")
    testapp.reset()
    assert testapp.get("/").html.select_one("#login-link")
    home = log_in(testapp, "ada@example.com", "correct horse").follow()
    assert "Logged in as ada@example.com." in home.text
    logged_out = home.forms["logout"].submit().follow()
    assert "Logged out." in logged_out.text
    assert logged_out.html.select_one("#current-user") is None


def test_a_wrong_password_says_nothing_about_the_account(testapp: webtest.TestApp) -> None:
    register(testapp, "ada@example.com")
    testapp.reset()
    wrong_password = log_in(testapp, "ada@example.com", "not it")
    unknown = log_in(testapp, "nobody@example.com", "not it")
    assert wrong_password.status_code == unknown.status_code == 422
    assert "Wrong email or password." in wrong_password.text
    assert "Wrong email or password." in unknown.text


def test_next_is_followed_only_on_this_site(testapp: webtest.TestApp) -> None:
    register(testapp, "ada@example.com")
    testapp.reset()
    assert log_in(testapp, "ada@example.com", "correct horse", "/a/page").location == "/a/page"
    testapp.reset()
    evil = log_in(testapp, "ada@example.com", "correct horse", "//evil.example/x")
    assert evil.location == "/"


def test_logout_needs_the_csrf_token(testapp: webtest.TestApp) -> None:
    register(testapp, "ada@example.com")
    forged = testapp.post("/auth/logout", status=400)
    assert "CSRF" in forged.text
    assert text_of(testapp.get("/"), "#current-user") == "ada@example.com"
