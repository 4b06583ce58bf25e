"""``/ws/tasks``: push task progress to browsers as it happens."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import tornado.ioloop
import tornado.websocket

from app.tasks.events import Event, TaskEvents


class TaskProgressSocket(tornado.websocket.WebSocketHandler):
    """Sends ``{"type": "task", "task": {...}}`` for every change of a task.

    ``?task=<id>`` limits the stream to one task. Events are published by
    worker threads; the subscription hops onto this connection's IOLoop with
    ``IOLoop.add_callback`` (thread-safe) before anything is written, since
    only the IOLoop thread may call :meth:`write_message`.

    :param events: the :class:`app.tasks.events.TaskEvents` hub.
    """

    def initialize(self, events: TaskEvents) -> None:  # type: ignore[override]
        self.events = events
        self.task_id: int | None = None
        self._unsubscribe: Callable[[], None] | None = None

    def check_origin(self, origin: str) -> bool:
        """Same-origin only (Tornado's default), stated here so it is a decision."""
        return super().check_origin(origin)

    def open(self, *args: str, **kwargs: str) -> None:
        task = self.get_query_argument("task", None)
        if task is not None:
            if not task.isdigit():
                self.close(code=1008, reason="task must be an integer")
                return
            self.task_id = int(task)
        loop = tornado.ioloop.IOLoop.current()
        self._unsubscribe = self.events.subscribe(functools.partial(loop.add_callback, self._send))
        self.write_message({"type": "hello", "task": self.task_id})

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
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
