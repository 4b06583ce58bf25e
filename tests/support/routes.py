"""Test-only routes: native rules put into a built hybrid, Flask views added by a factory.

The skeleton's tests use the skeleton's own routes and these, never a
feature's, so they pass whatever ``server/features.py`` lists::

    def add_views(app: Flask) -> None:
        app.add_url_rule("/_test/hello", "test_hello", lambda: "hello")

    server = live_server(create_flask_app=with_views(add_views))
    add_native_route(server.hybrid, "/_test/native", MyHandler)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from typing import Any

import tornado.web
import tornado.websocket
from flask import Flask
from tornado.web import url

from app import create_app
from app.feature import Feature, Shared
from config import Settings
from server.build import FlaskFactory, Hybrid
from server.inventory import Route, build_inventory
from tornado_handlers.mixins import FlaskSessionMixin


def add_native_route(
    hybrid: Hybrid,
    path: str,
    handler: type[tornado.web.RequestHandler],
    name: str | None = None,
    **kwargs: Any,
) -> None:
    """Put a native rule for ``path`` first in ``hybrid``'s route table.

    Works on a hybrid that already serves (``live_server().hybrid``): Tornado
    reads the table per request.

    :param hybrid: the built service.
    :param path: the rule's pattern, e.g. ``r"/_test/items/([0-9]+)"``.
    :param handler: the handler class; its ``initialize`` receives ``executor``
        and ``flask_app`` (as :class:`~tornado_handlers.base.BaseHandler`'s
        does) and ``kwargs``.
    :param name: the rule's name, for ``reverse_url`` and ``native_url``.
    """
    router = hybrid.application.wildcard_router
    shared = Shared(hybrid.executor, hybrid.flask_app).kwargs(**kwargs)
    router.rules.insert(0, router.process_rule(url(path, handler, shared, name=name)))


def with_views(*add_views: Callable[[Flask], None]) -> FlaskFactory:
    """Return a Flask factory that builds the real app, then adds test-only views.

    For ``live_server(create_flask_app=...)`` and :func:`server.build.build_hybrid`.

    :param add_views: each is called with the new app, in order, after
        :func:`app.create_app` (the settings, the executor, the features).
    """

    def factory(settings: Settings, executor: Executor, features: Iterable[Feature]) -> Flask:
        app = create_app(settings, executor, features)
        for add in add_views:
            add(app)
        return app

    return factory


HOLD_TIMEOUT = 20.0
"""Seconds a :func:`holding_views` view waits for its Event at most."""


def holding_views(release: threading.Event) -> FlaskFactory:
    """A Flask factory adding ``GET /_test/hold``: it waits for ``release`` (at most
    :data:`HOLD_TIMEOUT` s), then answers ``"released"``. Holds bridge threads on cue."""

    def add(app: Flask) -> None:
        @app.get("/_test/hold")
        def hold() -> str:
            release.wait(HOLD_TIMEOUT)
            return "released"

    return with_views(add)


def inventory(hybrid: Hybrid, mount: str = "") -> dict[tuple[str, str], Route]:
    """The route inventory of ``hybrid`` (as ``manage.py routes`` lists it), by ``(side, handler)``.

    :param mount: the Flask mount (``FLASK_MOUNT``) the hybrid was built with.
    """
    routes = build_inventory(hybrid.application.wildcard_router.rules, hybrid.flask_app, mount)
    return {(route.side, route.handler): route for route in routes}


class HelloSocket(FlaskSessionMixin, tornado.websocket.WebSocketHandler):
    """A test-only WebSocket: its first message says who is logged in, then it waits.

    ``{"type": "hello", "user": {"id", "email"} | null}``, read from Flask's
    session cookie in the handshake, as a feature's socket does. While open it
    is in ``Application.settings["websockets"]``, so the server's shutdown
    closes it with 1001. Add it with ``add_native_route(hybrid, path, HelloSocket)``.
    """

    def initialize(self, executor: Executor, flask_app: Flask) -> None:
        """Take the route table's shared dependencies."""
        self.executor = executor
        self.flask_app = flask_app

    async def open(self, *args: str, **kwargs: str) -> None:
        """Look the user up (on the executor), then say hello."""
        user = await self.load_user()
        if self.ws_connection is None or self.ws_connection.is_closing():
            return  # the client left while the user was looked up
        self.settings["websockets"].add(self)
        self.write_message({"type": "hello", "user": user})

    def on_message(self, message: str | bytes) -> None:
        """Messages from the client are ignored."""

    def on_close(self) -> None:
        """Forget the connection."""
        self.settings["websockets"].discard(self)
