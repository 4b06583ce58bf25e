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
from flask.sessions import SecureCookieSession
from sqlalchemy.orm import Session
from tornado.log import gen_log

from app.auth.service import user_data
from app.database import call_in_session
from app.errors import error_response
from tornado_handlers import flask_session
from tornado_handlers.flask_session import SessionUser
from tornado_handlers.urls import build_flask_url
from wsgi_bridge import ensure_request_id

T = TypeVar("T")


class BaseHandler(tornado.web.RequestHandler):
    """A native JSON handler with the service's shared dependencies.

    Route kwargs (passed to :meth:`initialize` from the route table):

    :param executor: the shared :class:`~concurrent.futures.ThreadPoolExecutor`.
    :param flask_app: the Flask app, whose database and config handlers share.

    Every response carries ``X-Request-ID`` (the same id the access log shows),
    and errors are JSON: ``{"error": reason}``.

    Handlers share Flask's login and session: :attr:`session` is Flask's
    signed-cookie session (changes are written back with the response),
    :attr:`current_user` is who logged in through Flask, and
    :meth:`flask_url` builds links to Flask views.
    """

    executor: Executor
    flask_app: Flask
    bytes_sent: int
    _flask_session: SecureCookieSession | None = None

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

    @property
    def session(self) -> SecureCookieSession:
        """Flask's ``session`` for this request, from its signed cookie (decoded once).

        A dict, as in a Flask view: changes to top-level keys mark it
        modified and the cookie is rewritten with the response, with Flask's
        serializer and cookie attributes, so the next Flask request sees them.
        Change it before the response is first flushed (headers go out then);
        mutate nested values by re-assigning the key, as in Flask. A missing,
        tampered or expired cookie gives an empty session (see
        :mod:`tornado_handlers.flask_session`). Using it marks the response
        ``Vary: Cookie``, as ``flask.session`` does.
        """
        if self._flask_session is None:
            name = flask_session.cookie_name(self.flask_app)
            self._flask_session = flask_session.load_session(self.flask_app, self.get_cookie(name))
        self._flask_session.accessed = True
        return self._flask_session

    def get_current_user(self) -> SessionUser | None:
        """Tornado's hook behind :attr:`current_user`: who logged in through Flask.

        Read from Flask-Login's ``_user_id`` in the verified session cookie;
        no database access, so it never blocks. ``None`` means anonymous
        (also for a tampered or expired cookie).
        """
        return flask_session.session_user(self.session)

    async def load_user(self) -> dict[str, Any] | None:
        """Return the logged-in user's row as ``User.to_dict()``, or ``None``.

        Reads the database on the shared executor; ``None`` when anonymous or
        when the account no longer exists.
        """
        user: SessionUser | None = self.current_user
        if user is None:
            return None
        return await self.run_in_session(lambda session: user_data(session, user.id))

    def flash(self, message: str, category: str = "message") -> None:
        """Queue a message for the next Flask page, like :func:`flask.flash`."""
        flask_session.add_flash(self.session, message, category)

    def flask_url(self, endpoint: str, *, _external: bool = False, **values: Any) -> str:
        """Build the URL of a Flask view, like :func:`flask.url_for` (mount prefix included).

        :param endpoint: e.g. ``"auth.login"``, ``"tasks.detail"``.
        :param _external: return ``scheme://host/...`` of this request.
        :param values: the rule's variables; unknown ones become the query string.
        :raises werkzeug.routing.BuildError: for an unknown endpoint or missing values.
        """
        return build_flask_url(
            self.flask_app,
            endpoint,
            values,
            host=self.request.host,
            scheme=self.request.protocol,
            external=_external,
        )

    def _save_session(self) -> None:
        """Add the session's ``Set-Cookie`` (and ``Vary: Cookie``) as Flask would.

        Runs inside :meth:`flush`, also while an error is being answered, so a
        cookie that cannot be written (no ``SECRET_KEY``, an unsupported
        cookie setting) is logged and left out rather than raised.
        """
        session = self._flask_session
        if session is None:
            return
        if session.accessed and "Cookie" not in self._headers.get_list("Vary"):
            self.add_header("Vary", "Cookie")
        try:
            cookie = flask_session.session_cookie(self.flask_app, session)
        except (RuntimeError, ValueError):
            gen_log.exception("the session cookie could not be written; the change is lost")
            return
        if cookie is None:
            return
        options: dict[str, Any] = {
            "path": cookie.path,
            "domain": cookie.domain,
            "secure": cookie.secure,
            "httponly": cookie.httponly,
            "samesite": cookie.samesite,
        }
        if cookie.delete:
            self.clear_cookie(cookie.name, **options)
        else:
            self.set_cookie(cookie.name, cookie.value, expires=cookie.expires, **options)

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
        if not self._headers_written:  # the session cookie must go out with the headers
            self._save_session()
        self.bytes_sent += sum(len(chunk) for chunk in self._write_buffer)
        return super().flush(include_footers)
