"""A session cookie over the browser's limit is an ERROR on both sides (issue 15).

Browsers drop a cookie larger than about 4 KB (RFC 6265, section 6.1), and the
session with it. Flask only had Werkzeug's warning, once per process; native
handlers said nothing. Now both sides log an ERROR each time, naming the
cookie, its size and the limit (``MAX_COOKIE_SIZE``), through one check
(:func:`app.session_cookies.check_cookie_size`), and refuse it in debug (a 500).
Real HTTP to the live server on both sides.
"""

from __future__ import annotations

import logging
import re
import secrets

import httpx
import pytest
from flask import Flask, session

from config.settings import SESSION_COOKIE_NAME as COOKIE
from tests.support.routes import add_native_route, with_views
from tests.support.server import LiveServer, ServerFactory
from tornado_handlers.base import BaseHandler

BLOB = secrets.token_urlsafe(3750)
"""5,000 random characters: more than fits in a 4 KB cookie, even compressed (itsdangerous)."""

PATHS = {"flask": "/_test/big-session", "native": "/_test/native-big-session"}

# Werkzeug still warns once per process besides the ERROR (its own check, kept).
WERKZEUG_WARNING = "ignore:The '.*' cookie is too large:UserWarning"


def add_big_session_view(app: Flask) -> None:
    """``/_test/big-session``: puts :data:`BLOB` into the session."""

    def big() -> str:
        session["blob"] = BLOB
        return "ok"

    app.add_url_rule(PATHS["flask"], "test_big_session", big)


class NativeBigSession(BaseHandler):
    """The native twin: puts :data:`BLOB` into the session."""

    def get(self) -> None:
        self.session["blob"] = BLOB
        self.write("ok")


def serve(live_server: ServerFactory, debug: bool) -> LiveServer:
    server = live_server(create_flask_app=with_views(add_big_session_view), debug=debug)
    add_native_route(server.hybrid, PATHS["native"], NativeBigSession)
    return server


def too_large(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The ERROR messages about an oversized cookie logged so far."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.ERROR and "too large" in record.getMessage()
    ]


@pytest.mark.filterwarnings(WERKZEUG_WARNING)
@pytest.mark.parametrize("side", ["flask", "native"])
def test_an_oversized_session_cookie_is_logged_each_time(
    live_server: ServerFactory, caplog: pytest.LogCaptureFixture, side: str
) -> None:
    server = serve(live_server, debug=False)
    with caplog.at_level(logging.ERROR):
        for _ in range(2):
            response = httpx.get(server.url + PATHS[side], timeout=10)
            assert response.status_code == 200  # still sent: only the browser can drop it
            assert COOKIE in response.headers["set-cookie"]
    messages = too_large(caplog)
    assert len(messages) == 2, messages  # every time, not once per process
    pattern = rf"the session cookie '{COOKIE}' is too large: (\d+) bytes, over the limit of 4093"
    match = re.search(pattern, messages[0])
    assert match, messages[0]
    assert int(match.group(1)) > 5000


@pytest.mark.filterwarnings(WERKZEUG_WARNING)
@pytest.mark.parametrize("side", ["flask", "native"])
def test_in_debug_an_oversized_session_cookie_is_a_500(
    live_server: ServerFactory, caplog: pytest.LogCaptureFixture, side: str
) -> None:
    server = serve(live_server, debug=True)
    with caplog.at_level(logging.ERROR):
        response = httpx.get(server.url + PATHS[side], timeout=10)
    assert response.status_code == 500
    assert COOKIE not in response.headers.get("set-cookie", "")
    assert too_large(caplog)
