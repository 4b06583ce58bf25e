"""One login for both sides, over real sockets.

A browser session created by Flask (the login form, over HTTP) is accepted by
native handlers and WebSockets (a test-only one,
:class:`~tests.support.routes.HelloSocket`), refused when tampered with or
expired, and a native handler's change to the session is seen by the next
Flask page.
"""

from __future__ import annotations

import asyncio
from contextlib import closing
from datetime import timedelta
from typing import Any

import httpx
import tornado.netutil
import tornado.web
from sqlalchemy import delete
from tornado.web import url

from app.auth.models import User
from app.database import call_in_session
from config.settings import SESSION_COOKIE_NAME as COOKIE
from tests.support.login import (
    EMAIL,
    browser,
    csrf_token,
    meta_csrf_token,
    register_and_log_in,
    tamper,
    websocket_hello,
)
from tests.support.routes import HelloSocket, add_native_route
from tests.support.server import LiveServer, ServerFactory
from tornado_handlers.base import BaseHandler
from tornado_handlers.flask_session import dump_session
from wsgi_bridge import HTTPServer

WEBSOCKET = "/_test/ws"
"""Where the test-only :class:`~tests.support.routes.HelloSocket` is added."""


def serve_with_websocket(live_server: ServerFactory) -> LiveServer:
    """Start the server and add the test-only WebSocket at :data:`WEBSOCKET`."""
    server = live_server()
    add_native_route(server.hybrid, WEBSOCKET, HelloSocket)
    return server


def hello(server: LiveServer, cookie: str | None) -> dict[str, Any]:
    """Open the test-only WebSocket with ``cookie`` as the ``Cookie`` header; its hello."""
    return websocket_hello(server.ws_url + WEBSOCKET, cookie)


def test_a_flask_login_is_recognised_by_native_routes_and_the_websocket(
    live_server: ServerFactory,
) -> None:
    server = serve_with_websocket(live_server)
    with closing(register_and_log_in(server)) as client:
        me = client.get("/api/me")
        assert me.status_code == 200
        assert me.json() == {"user": {"id": 1, "email": EMAIL}, "logout_url": "/auth/logout"}
        assert me.headers["vary"] == "Cookie"
        assert "set-cookie" not in me.headers  # read, not changed: nothing written back
        assert hello(server, f"{COOKIE}={client.cookies[COOKIE]}") == {
            "type": "hello",
            "user": {"id": 1, "email": EMAIL},
        }


def test_anonymous_visitors_are_anonymous_everywhere(live_server: ServerFactory) -> None:
    server = serve_with_websocket(live_server)
    me = httpx.get(f"{server.url}/api/me")
    assert me.status_code == 401
    assert me.json() == {"error": "login required", "login_url": "/auth/login"}
    assert hello(server, None)["user"] is None


def test_a_tampered_cookie_is_anonymous_not_an_error(live_server: ServerFactory) -> None:
    server = serve_with_websocket(live_server)
    with closing(register_and_log_in(server)) as client:
        forged = tamper(client.cookies[COOKIE])
        cookies = {COOKIE: forged}
        assert httpx.get(f"{server.url}/api/me", cookies=cookies).status_code == 401
        assert hello(server, f"{COOKIE}={forged}")["user"] is None
        home = httpx.get(f"{server.url}/", cookies=cookies)  # Flask agrees
        assert home.status_code == 200
        assert 'id="login-link"' in home.text


def test_an_expired_cookie_is_anonymous(live_server: ServerFactory) -> None:
    server = serve_with_websocket(live_server)
    with closing(register_and_log_in(server)) as client:
        assert client.get("/api/me").status_code == 200
        server.hybrid.flask_app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(seconds=-1)
        assert client.get("/api/me").status_code == 401
        assert hello(server, f"{COOKIE}={client.cookies[COOKIE]}")["user"] is None


def test_a_deleted_account_is_anonymous(live_server: ServerFactory) -> None:
    server = serve_with_websocket(live_server)
    with closing(register_and_log_in(server)) as client:
        call_in_session(server.hybrid.flask_app, lambda session: session.execute(delete(User)))
        assert client.get("/api/me").status_code == 401
        assert hello(server, f"{COOKIE}={client.cookies[COOKIE]}")["user"] is None


def test_a_native_handler_changes_the_session_and_flask_sees_it(
    live_server: ServerFactory,
) -> None:
    server = live_server()
    with closing(register_and_log_in(server)) as client:
        token = meta_csrf_token(client.get("/").text)  # also consumes the login's flash
        changed = client.put(
            "/api/preferences", json={"theme": "dark"}, headers={"X-CSRFToken": token}
        )
        assert changed.status_code == 200
        assert changed.json() == {"theme": "dark"}
        set_cookie = changed.headers["set-cookie"]
        assert set_cookie.startswith(f"{COOKIE}=")
        assert "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie and "Path=/" in set_cookie
        assert "expires" not in set_cookie.lower()  # a browser-session cookie, as Flask writes it

        home = client.get("/")  # Flask
        assert '<body data-theme="dark">' in home.text
        assert "Theme set to dark." in home.text  # the native flash, shown once by Flask
        assert f'<span class="user" id="current-user">{EMAIL}</span>' in home.text
        assert "Theme set to dark." not in client.get("/").text
        assert client.get("/api/preferences").json() == {"theme": "dark"}
        assert client.get("/api/me").status_code == 200  # the login survived the rewrite


def test_anonymous_sessions_are_shared_too(live_server: ServerFactory) -> None:
    server = live_server()
    with browser(server) as client:
        assert client.put("/api/preferences", json={"theme": "dark"}).status_code == 200
        assert '<body data-theme="dark">' in client.get("/").text


def test_preference_errors(live_server: ServerFactory) -> None:
    server = live_server()
    with browser(server) as client:
        wrong = client.put("/api/preferences", json={"theme": "pink"})
        assert wrong.status_code == 422
        assert wrong.json() == {
            "error": "validation failed",
            "fields": {"theme": "must be one of: dark, light"},
        }
        form = client.put("/api/preferences", data={"theme": "dark"})
        assert form.status_code == 415  # JSON only (no session cookie yet: no CSRF check)
        assert "set-cookie" not in wrong.headers and "set-cookie" not in form.headers


def test_flask_logout_is_seen_natively(live_server: ServerFactory) -> None:
    server = live_server()
    with closing(register_and_log_in(server)) as client:
        page = client.get("/").text
        client.post("/auth/logout", data={"csrf_token": csrf_token(page)})
        assert client.get("/api/me").status_code == 401


def test_a_cookie_signed_with_flask_serializer_is_accepted(live_server: ServerFactory) -> None:
    """The native side needs nothing but Flask's own serializer and key."""
    server = live_server()
    register_and_log_in(server).close()
    with server.hybrid.flask_app.app_context():
        cookie = dump_session(server.hybrid.flask_app, {"_user_id": "1"})
    assert httpx.get(f"{server.url}/api/me", cookies={COOKIE: cookie}).status_code == 200


class LogOutHandler(BaseHandler):
    """A test-only native log-out: empties Flask's session."""

    def post(self) -> None:
        self.session.clear()
        self.write_json({"logged_out": True})


def test_a_native_handler_that_empties_the_session_deletes_the_cookie(
    live_server: ServerFactory,
) -> None:
    server = live_server()
    with closing(register_and_log_in(server)) as client:
        flask_app = server.hybrid.flask_app
        token = meta_csrf_token(client.get("/").text)
        application = tornado.web.Application(
            [url(r"/logout", LogOutHandler, {"executor": None, "flask_app": flask_app})]
        )

        async def log_out() -> httpx.Response:
            sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
            http_server = HTTPServer(application)
            http_server.add_sockets(sockets)
            try:
                port = sockets[0].getsockname()[1]
                async with httpx.AsyncClient(cookies=client.cookies) as other:
                    return await other.post(
                        f"http://127.0.0.1:{port}/logout", headers={"X-CSRF-Token": token}
                    )
            finally:
                http_server.stop()
                await http_server.close_all_connections()

        response = asyncio.run(log_out())
        set_cookie = response.headers["set-cookie"]
        assert set_cookie.startswith((f'{COOKIE}=""; ', f"{COOKIE}=; "))
        assert "expires=" in set_cookie.lower() and "Path=/" in set_cookie
        client.cookies.delete(COOKIE)
        client.cookies.update(response.cookies)
        assert COOKIE not in client.cookies or not client.cookies[COOKIE]
        assert client.get("/api/me").status_code == 401
