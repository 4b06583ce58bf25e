"""The task progress WebSocket (``/ws/tasks``) knows who logged in through Flask.

Its first message says so: ``{"type": "hello", "task": id | null, "user": ... | null}``.
"""

from __future__ import annotations

from contextlib import closing
from datetime import timedelta
from typing import Any

from sqlalchemy import delete

from app.auth.models import User
from app.database import call_in_session
from config.settings import SESSION_COOKIE_NAME as COOKIE
from tests.support.login import EMAIL, register_and_log_in, tamper, websocket_hello
from tests.support.server import LiveServer, ServerFactory


def hello(server: LiveServer, cookie: str | None) -> dict[str, Any]:
    """Open ``/ws/tasks`` with ``cookie`` as the ``Cookie`` header; return the hello message."""
    return websocket_hello(f"{server.ws_url}/ws/tasks", cookie)


def test_a_flask_login_is_recognised_by_the_task_socket(live_server: ServerFactory) -> None:
    server = live_server()
    with closing(register_and_log_in(server)) as client:
        assert hello(server, f"{COOKIE}={client.cookies[COOKIE]}") == {
            "type": "hello",
            "task": None,
            "user": {"id": 1, "email": EMAIL},
        }


def test_anonymous_visitors_are_anonymous_on_the_task_socket(live_server: ServerFactory) -> None:
    server = live_server()
    assert hello(server, None) == {"type": "hello", "task": None, "user": None}


def test_a_tampered_cookie_is_anonymous_on_the_task_socket(live_server: ServerFactory) -> None:
    server = live_server()
    with closing(register_and_log_in(server)) as client:
        forged = tamper(client.cookies[COOKIE])
        assert hello(server, f"{COOKIE}={forged}")["user"] is None


def test_an_expired_cookie_is_anonymous_on_the_task_socket(live_server: ServerFactory) -> None:
    server = live_server()
    with closing(register_and_log_in(server)) as client:
        server.hybrid.flask_app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(seconds=-1)
        assert hello(server, f"{COOKIE}={client.cookies[COOKIE]}")["user"] is None


def test_a_deleted_account_is_anonymous_on_the_task_socket(live_server: ServerFactory) -> None:
    server = live_server()
    with closing(register_and_log_in(server)) as client:
        call_in_session(server.hybrid.flask_app, lambda session: session.execute(delete(User)))
        assert hello(server, f"{COOKIE}={client.cookies[COOKIE]}")["user"] is None
