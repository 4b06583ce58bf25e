"""``tornado_handlers.flask_session``: Flask's cookie, read and written without a server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask, flash, get_flashed_messages, session
from flask.sessions import SecureCookieSessionInterface
from flask.testing import FlaskClient
from itsdangerous import TimestampSigner

from tornado_handlers.flask_session import (
    SessionUser,
    add_flash,
    cookie_name,
    dump_session,
    load_session,
    session_cookie,
    session_user,
)


@pytest.fixture
def app(flask_app: Flask) -> Iterator[Flask]:
    """The app plus two test views that write and read the session the Flask way."""

    @flask_app.get("/_test/set")
    def set_values() -> str:
        session["_user_id"] = "7"
        session["_fresh"] = True
        session["pair"] = (1, "a")  # tagged JSON keeps tuples
        flash("from flask", "success")
        return "ok"

    @flask_app.get("/_test/read")
    def read_values() -> dict[str, object]:
        return {
            "theme": session.get("theme"),
            "user": session.get("_user_id"),
            "flashes": get_flashed_messages(with_categories=True),
        }

    yield flask_app


def flask_cookie(client: FlaskClient, app: Flask) -> str:
    """The session cookie's value in ``client``'s jar."""
    cookie = client.get_cookie(cookie_name(app))
    assert cookie is not None
    return cookie.value


def test_reads_the_cookie_flask_wrote(app: Flask) -> None:
    client = app.test_client()
    client.get("/_test/set")
    data = load_session(app, flask_cookie(client, app))
    assert data["pair"] == (1, "a")
    assert data["_flashes"] == [("success", "from flask")]
    assert session_user(data) == SessionUser(id=7, fresh=True)
    assert not data.modified


def test_flask_reads_the_cookie_written_here(app: Flask) -> None:
    client = app.test_client()
    client.get("/_test/set")
    data = load_session(app, flask_cookie(client, app))
    data["theme"] = "dark"
    add_flash(data, "from tornado", "success")
    cookie = session_cookie(app, data)
    assert cookie is not None and not cookie.delete
    assert cookie.value == dump_session(app, data)
    client.set_cookie(cookie.name, cookie.value)
    assert client.get("/_test/read").json == {
        "theme": "dark",
        "user": "7",
        "flashes": [["success", "from flask"], ["success", "from tornado"]],
    }


@pytest.mark.parametrize("value", [None, "", "garbage", "a.b.c"])
def test_missing_or_garbage_cookies_are_anonymous(app: Flask, value: str | None) -> None:
    data = load_session(app, value)
    assert dict(data) == {}
    assert session_user(data) is None


def test_a_tampered_cookie_is_anonymous(app: Flask) -> None:
    client = app.test_client()
    client.get("/_test/set")
    value = flask_cookie(client, app)
    payload, timestamp, signature = value.rsplit(".", 2)
    # The first character: the last one of base64 may carry only padding bits.
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    assert load_session(app, f"{payload}.{timestamp}.{flipped}") == {}
    other = Flask("other")
    other.secret_key = "another-secret-key-of-some-length"
    forged = SecureCookieSessionInterface().get_signing_serializer(other)
    assert forged is not None
    assert load_session(app, forged.dumps({"_user_id": "1"})) == {}


def test_an_expired_cookie_is_anonymous(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """Older than ``PERMANENT_SESSION_LIFETIME`` (itsdangerous ``max_age``) -> empty."""
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=1)
    two_hours_ago = int(time.time()) - 7200
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: two_hours_ago)
    old = dump_session(app, {"_user_id": "1"})
    monkeypatch.undo()
    assert load_session(app, old) == {}
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=3)
    assert load_session(app, old)["_user_id"] == "1"


def test_a_non_integer_user_id_is_anonymous(app: Flask) -> None:
    data = load_session(app, None)
    data["_user_id"] = "admin"
    assert session_user(data) is None


def test_cookie_attributes_come_from_flask_config(app: Flask) -> None:
    app.config.update(
        SESSION_COOKIE_NAME="sid",
        SESSION_COOKIE_PATH="/app",
        SESSION_COOKIE_DOMAIN="example.test",
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_HTTPONLY=False,
        SESSION_COOKIE_SAMESITE="Strict",
    )
    data = load_session(app, None)
    data["k"] = 1
    cookie = session_cookie(app, data)
    assert cookie is not None
    assert (cookie.name, cookie.path, cookie.domain) == ("sid", "/app", "example.test")
    assert (cookie.secure, cookie.httponly, cookie.samesite) == (True, False, "Strict")
    assert cookie.expires is None  # not permanent: a browser-session cookie
    assert cookie_name(app) == "sid"


def test_a_permanent_session_gets_expires(app: Flask) -> None:
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(days=2)
    data = load_session(app, None)
    data.permanent = True
    cookie = session_cookie(app, data)
    assert cookie is not None and cookie.expires is not None
    expected = datetime.now(UTC) + timedelta(days=2)
    assert abs((cookie.expires - expected).total_seconds()) < 5


def test_unchanged_sessions_write_nothing_and_emptied_ones_delete(app: Flask) -> None:
    assert session_cookie(app, load_session(app, None)) is None
    data = load_session(app, dump_session(app, {"a": 1}))
    assert session_cookie(app, data) is None  # read, not modified
    data.clear()
    cookie = session_cookie(app, data)
    assert cookie is not None and cookie.delete and cookie.value == ""


def test_other_session_interfaces_are_refused(app: Flask) -> None:
    from flask.sessions import SessionInterface

    app.session_interface = SessionInterface()
    with pytest.raises(TypeError, match="signed-cookie session only"):
        load_session(app, None)


def test_without_a_secret_key_reads_are_empty_and_writes_fail(app: Flask) -> None:
    app.secret_key = None
    data = load_session(app, "anything")
    assert data == {}
    data["k"] = 1
    with pytest.raises(RuntimeError, match="no SECRET_KEY"):
        session_cookie(app, data)
