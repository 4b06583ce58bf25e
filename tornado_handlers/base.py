"""The base class of every native handler: shared executor, database, JSON errors.

.. warning::
   The IOLoop thread must never block. Anything that waits on a disk, a
   socket or a lock -- every database call included -- goes through
   :meth:`BaseHandler.run_in_executor` or :meth:`BaseHandler.run_in_session`,
   which run it on the shared executor and ``await`` the result. A blocking
   call made directly in a handler stalls every request and WebSocket of the
   process for as long as it takes.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

import tornado.ioloop
import tornado.web
from flask import Flask
from sqlalchemy.orm import Session

from app.database import call_in_session
from app.errors import error_response
from wsgi_bridge import ensure_request_id

T = TypeVar("T")


class BaseHandler(tornado.web.RequestHandler):
    """A native JSON handler with the service's shared dependencies.

    Route kwargs (passed to :meth:`initialize` from the route table):

    :param executor: the shared :class:`~concurrent.futures.ThreadPoolExecutor`.
    :param flask_app: the Flask app, whose database and config handlers share.

    Every response carries ``X-Request-ID`` (the same id the access log shows),
    and errors are JSON: ``{"error": reason}``.
    """

    executor: Executor
    flask_app: Flask
    bytes_sent: int

    def initialize(self, executor: Executor, flask_app: Flask) -> None:  # type: ignore[override]
        self.executor = executor
        self.flask_app = flask_app
        self.bytes_sent = 0

    def prepare(self) -> None:
        in_flight = self.application.settings.get("in_flight")
        if in_flight is not None:
            in_flight.enter()
            self._in_flight = in_flight

    def on_finish(self) -> None:
        self._leave()

    def on_connection_close(self) -> None:
        self._leave()
        super().on_connection_close()

    def _leave(self) -> None:
        in_flight, self._in_flight = getattr(self, "_in_flight", None), None
        if in_flight is not None:
            in_flight.leave()

    def set_default_headers(self) -> None:
        self.set_header("X-Request-ID", ensure_request_id(self.request))

    async def run_in_executor(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run the blocking ``fn(*args, **kwargs)`` on the shared executor and await it.

        :raises Exception: whatever ``fn`` raised.
        """
        loop = tornado.ioloop.IOLoop.current()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))

    async def run_in_session(self, fn: Callable[[Session], T]) -> T:
        """Run ``fn(session)`` as one unit of work on the shared executor.

        The session is scoped to this call: committed if ``fn`` returns,
        rolled back if it raises, always closed; an app context of the Flask
        app is pushed around it inside the worker thread (Flask-SQLAlchemy 3
        needs one) and popped afterwards. See :func:`app.database.call_in_session`.

        :param fn: takes a :class:`~sqlalchemy.orm.Session`; return plain data.
        :raises Exception: whatever ``fn`` or the commit raised.
        """
        return await self.run_in_executor(call_in_session, self.flask_app, fn)

    def write_json(self, data: Any, status: int = 200) -> None:
        """Write ``data`` as the JSON response body with ``status``."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps(data, separators=(",", ":")))

    def json_body(self) -> dict[str, Any]:
        """The request body decoded as a JSON object.

        :raises tornado.web.HTTPError: 400 if the body is not a JSON object.
        """
        try:
            body = json.loads(self.request.body or b"null")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise tornado.web.HTTPError(400, reason="the body must be a JSON object")
        return body

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """JSON error body instead of Tornado's HTML page.

        Domain exceptions get the status and body Flask gives them
        (:func:`app.errors.error_response`: 422 with the fields, 404, 409);
        other errors ``{"error": reason}``.
        """
        exc_info = kwargs.get("exc_info")
        mapped = error_response(exc_info[1]) if exc_info else None
        if mapped is not None:
            status_code, body = mapped
            self.set_status(status_code)
        elif status_code >= 500:
            body = {"error": "internal server error"}
        else:
            body = {"error": self._reason}
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """Domain errors are answers, not failures: log only real errors."""
        if value is not None and error_response(value) is not None:
            return
        super().log_exception(typ, value, tb)

    def flush(self, include_footers: bool = False) -> Any:
        self.bytes_sent += sum(len(chunk) for chunk in self._write_buffer)
        return super().flush(include_footers)
