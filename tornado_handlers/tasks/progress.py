"""``/ws/tasks``: push task progress to browsers as it happens."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

import tornado.ioloop
import tornado.websocket
from flask import Flask

from app.tasks.events import Event, TaskEvents
from app.tasks.service import TaskNotFound, parse_task_id
from tornado_handlers.mixins import FlaskSessionMixin

OpenSockets = set[tornado.websocket.WebSocketHandler]
"""``Application.settings["websockets"]``: the open connections, closed at shutdown."""


class TaskProgressSocket(FlaskSessionMixin, tornado.websocket.WebSocketHandler):
    """Sends ``{"type": "task", "task": {...}}`` for every change of a task.

    ``?task=<id>`` limits the stream to one task. Events are published by
    worker threads; the subscription hops onto this connection's IOLoop with
    ``IOLoop.add_callback`` (thread-safe) before anything is written, since
    only the IOLoop thread may call :meth:`write_message`.

    Authentication: the handshake carries Flask's ``session`` cookie, verified
    like :class:`~tornado_handlers.base.BaseHandler` does (the same
    :class:`~tornado_handlers.mixins.FlaskSessionMixin`). Anonymous visitors may watch --
    task progress is public in this service, as the task pages are -- and the
    first message says who the server thinks you are:
    ``{"type": "hello", "task": id | null, "user": {"id", "email"} | null}``
    (``null`` for anonymous, a tampered or expired cookie, or a deleted
    account). For a private stream, close anonymous connections in
    :meth:`open` with ``self.close(4401, "login required")``.

    Open connections are tracked in ``Application.settings["websockets"]`` (a
    ``set``, when the composition root provides one), so the server's
    shutdown can close them with 1001 "going away" (RFC 6455, section 7.4.1).

    :param events: the :class:`app.tasks.events.TaskEvents` hub.
    :param flask_app: the Flask app whose session cookie and users to read.
    :param executor: the shared thread pool, for the user lookup.
    """

    def initialize(self, events: TaskEvents, flask_app: Flask, executor: Executor) -> None:
        self.events = events
        self.flask_app = flask_app
        self.executor = executor
        self.task_id: int | None = None
        self._unsubscribe: Callable[[], None] | None = None

    def check_origin(self, origin: str) -> bool:
        """Same-origin only (Tornado's default), stated here so it is a decision."""
        return super().check_origin(origin)

    async def open(self, *args: str, **kwargs: str) -> None:
        task = self.get_query_argument("task", None)
        if task is not None:
            try:
                self.task_id = parse_task_id(task)
            except TaskNotFound:  # not an id in the valid range (e.g. "abc", "²")
                self.close(code=1008, reason="task must be an integer")
                return
        user = await self.load_user()
        if self.ws_connection is None or self.ws_connection.is_closing():
            return  # the client left while the user was looked up
        loop = tornado.ioloop.IOLoop.current()
        self._unsubscribe = self.events.subscribe(functools.partial(loop.add_callback, self._send))
        open_sockets: OpenSockets | None = self.settings.get("websockets")
        if open_sockets is not None:
            open_sockets.add(self)
        self.write_message({"type": "hello", "task": self.task_id, "user": user})

    def _send(self, event: Event) -> None:
        task: dict[str, Any] = event.get("task", {})
        if self.task_id is not None and task.get("id") != self.task_id:
            return
        if self.ws_connection is None or self.ws_connection.is_closing():
            return
        try:
            sent = self.write_message(json.dumps(event))
        except tornado.websocket.WebSocketClosedError:
            return
        # A client that leaves mid-write fails the future; that is not an error here.
        sent.add_done_callback(lambda future: future.exception())

    def on_message(self, message: str | bytes) -> None:
        """Clients have nothing to say; messages are ignored."""

    def on_close(self) -> None:
        """Unsubscribe and forget the connection."""
        open_sockets: OpenSockets | None = self.settings.get("websockets")
        if open_sockets is not None:
            open_sockets.discard(self)
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
