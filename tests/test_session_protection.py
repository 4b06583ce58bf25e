"""Flask-Login's session protection holds on both sides (issue 15).

Flask-Login keeps a fingerprint of the client in the session (``_id``: a hash
of the remote address -- the first ``X-Forwarded-For`` address if the header
is there -- and the ``User-Agent``). When a request's fingerprint differs, it
marks the login not fresh ("basic", the default) or logs the user out
("strong"). Native handlers read the same cookie and must say the same thing
as Flask does for the same request, over real HTTP on both sides.
"""

from __future__ import annotations

from contextlib import closing
from typing import Any

import httpx
import pytest
from flask import Flask, jsonify
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_fresh

from config.settings import SESSION_COOKIE_NAME as COOKIE
from tests.support.login import register_and_log_in
from tests.support.routes import add_native_route, with_views
from tests.support.server import LiveServer, ServerFactory
from tornado_handlers.base import BaseHandler

FLASK_STATE = "/_test/login-state"
NATIVE_STATE = "/_test/native-login-state"


def add_state_view(protection: str) -> Any:
    """A Flask view answering who is logged in and whether freshly, under ``protection``."""

    def add(app: Flask) -> None:
        app.config["SESSION_PROTECTION"] = protection

        def state() -> ResponseReturnValue:
            user = current_user.id if current_user.is_authenticated else None
            return jsonify(user=user, fresh=login_fresh())

        app.add_url_rule(FLASK_STATE, "test_login_state", state)

    return add


class NativeState(BaseHandler):
    """The native twin of the Flask view: who the session says, and whether freshly."""

    def get(self) -> None:
        user = self.current_user
        self.write_json({"user": user.id if user else None, "fresh": bool(user and user.fresh)})


def serve(live_server: ServerFactory, protection: str) -> LiveServer:
    """The live server with both state routes, Flask-Login in ``protection`` mode."""
    server = live_server(create_flask_app=with_views(add_state_view(protection)))
    add_native_route(server.hybrid, NATIVE_STATE, NativeState)
    return server


def states(server: LiveServer, cookie: str, **headers: str) -> dict[str, Any]:
    """Both sides' answers for the same cookie and headers (each a fresh request)."""
    answers = {}
    for side, path in (("flask", FLASK_STATE), ("native", NATIVE_STATE)):
        response = httpx.get(
            server.url + path, headers={"Cookie": f"{COOKIE}={cookie}", **headers}, timeout=10
        )
        assert response.status_code == 200, response.text
        answers[side] = response.json()
    return answers


@pytest.mark.parametrize(
    ("headers", "changed"),
    [
        ({}, False),
        ({"User-Agent": "Another browser/1.0"}, True),
        ({"X-Forwarded-For": "203.0.113.9"}, True),
    ],
    ids=["same-client", "other-user-agent", "other-forwarded-for"],
)
def test_basic_protection_marks_the_login_not_fresh_on_both_sides(
    live_server: ServerFactory, headers: dict[str, str], changed: bool
) -> None:
    server = serve(live_server, "basic")
    with closing(register_and_log_in(server)) as client:
        cookie = client.cookies[COOKIE]
        user_agent = client.headers["User-Agent"]
    answers = states(server, cookie, **{"User-Agent": user_agent, **headers})
    expected = {"user": 1, "fresh": not changed}
    assert answers == {"flask": expected, "native": expected}


def test_strong_protection_logs_out_on_both_sides(live_server: ServerFactory) -> None:
    server = serve(live_server, "strong")
    with closing(register_and_log_in(server)) as client:
        cookie = client.cookies[COOKIE]
        user_agent = client.headers["User-Agent"]
    same = states(server, cookie, **{"User-Agent": user_agent})
    assert same == {"flask": {"user": 1, "fresh": True}, "native": {"user": 1, "fresh": True}}
    other = states(server, cookie, **{"User-Agent": "Another browser/1.0"})
    anonymous = {"user": None, "fresh": False}
    assert other == {"flask": anonymous, "native": anonymous}


def test_the_native_side_writes_the_changed_session_back_as_flask_does(
    live_server: ServerFactory,
) -> None:
    server = serve(live_server, "basic")
    with closing(register_and_log_in(server)) as client:
        cookie = client.cookies[COOKIE]
    written = httpx.get(
        server.url + NATIVE_STATE,
        headers={"Cookie": f"{COOKIE}={cookie}", "User-Agent": "Another browser/1.0"},
        timeout=10,
    )
    assert COOKIE in written.cookies  # _fresh = False, sent back like Flask does
    again = states(server, written.cookies[COOKIE])  # httpx's own User-Agent
    assert again["flask"] == again["native"] == {"user": 1, "fresh": False}
