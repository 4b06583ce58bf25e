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
import inspect
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
from app.errors import allow_header, error_response, http_error_message
from tornado_handlers import flask_session
from tornado_handlers.flask_session import SessionUser
from tornado_handlers.flask_urls import build_flask_url
from wsgi_bridge import ensure_request_id

T = TypeVar("T")


class BaseHandler(tornado.web.RequestHandler):
    """A native JSON handler with the service's shared dependencies.

    Route kwargs (passed to :meth:`initialize` from the route table):

    :param executor: the shared :class:`~concurrent.futures.ThreadPoolExecutor`.
    :param flask_app: the Flask app, whose database and config handlers share.

    Every response carries ``X-Request-ID`` (the same id the access log shows),
    JSON is written byte for byte as Flask writes it (:meth:`write_json`), and
    errors are JSON: ``{"error": reason}``.

    HTTP methods, as Flask answers them for every rule: ``HEAD`` runs
    :meth:`get` without sending the body (RFC 9110 section 9.3.2), ``OPTIONS``
    answers 200 with ``Allow`` (section 9.3.7), and a 405 carries ``Allow``
    (section 15.5.6); see :meth:`implemented_methods`.

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

    @classmethod
    def implemented_methods(cls) -> list[str]:
        """Return the HTTP methods this handler answers, sorted (the ``Allow`` header).

        A method counts when the subclass defines it (Tornado's own
        ``RequestHandler`` methods answer 405); ``HEAD`` counts when ``GET``
        does, and ``OPTIONS`` always.
        """
        base = tornado.web.RequestHandler
        methods = {"OPTIONS"}
        for method in cls.SUPPORTED_METHODS:
            name = method.lower()
            if method in ("HEAD", "OPTIONS"):
                continue
            if getattr(cls, name, None) is not getattr(base, name, None):
                methods.add(method)
        if "GET" in methods or cls.head is not BaseHandler.head:
            methods.add("HEAD")
        return sorted(methods)

    async def head(self, *args: str, **kwargs: str) -> None:
        """``HEAD``: :meth:`get` without the body (RFC 9110 section 9.3.2); 405 without ``get``.

        The status and headers -- ``Content-Length`` of the body ``GET`` would
        send included -- are ``GET``'s; Tornado's :meth:`flush` sends no body
        for ``HEAD``. A subclass may still define its own ``head``.

        :raises tornado.web.HTTPError: 405 if the handler has no ``get``.
        """
        if type(self).get is tornado.web.RequestHandler.get:
            raise tornado.web.HTTPError(405)
        result = self.get(*args, **kwargs)
        if inspect.isawaitable(result):
            await result

    def options(self, *args: str, **kwargs: str) -> None:
        """``OPTIONS``: 200, ``Allow`` and no body, as Flask answers (RFC 9110 section 9.3.7).

        ``Content-Type`` is Flask's for its empty answer, so both sides send
        the same headers.
        """
        self.set_header("Allow", allow_header(self.implemented_methods()))
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish()

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

    def json_bytes(self, data: Any) -> bytes:
        """Return ``data`` serialized exactly as a Flask view returning it would be.

        Flask's JSON provider (``flask_app.json``) does the work: keys sorted,
        compact separators and a final newline in production, two-space
        indentation in debug mode, the provider's ``default`` for dates,
        decimals and dataclasses. So a ported route sends the very bytes its
        Flask view sent.

        :param data: JSON-ready data (``dict``, ``list``, ``str``, numbers ...).
        :raises TypeError: if ``data`` holds something the provider cannot serialize.
        """
        return self.flask_app.json.response(data).get_data()

    def write_json(self, data: Any, status: int = 200) -> None:
        """Write ``data`` as the JSON response body with ``status`` (:meth:`json_bytes`).

        :param data: JSON-ready data.
        :param status: the HTTP status code.
        """
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.write(self.json_bytes(data))

    def json_body(self) -> dict[str, Any]:
        """The request body decoded as a JSON object, as Flask's
        ``request.get_json(silent=True)`` reads it: only with a JSON ``Content-Type``
        (``application/json`` or ``application/*+json``), otherwise no body at all.

        :raises tornado.web.HTTPError: 400 if there is no JSON object.
        """
        mimetype = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        is_json = mimetype == "application/json" or (
            mimetype.startswith("application/") and mimetype.endswith("+json")
        )
        body: Any = None
        if is_json:
            try:
                body = json.loads(self.request.body or b"null")
            except ValueError:
                body = None
        if not isinstance(body, dict):
            raise tornado.web.HTTPError(400, reason="the body must be a JSON object")
        return body

    def compute_etag(self) -> str | None:
        """No automatic ``ETag``: Flask sends none for these responses, and a native
        route must not start answering ``If-None-Match`` with 304 where its Flask
        twin answers 200 (parity)."""
        return None

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """JSON error body instead of Tornado's HTML page.

        Mapped exceptions get the status and body Flask gives them
        (:func:`app.errors.error_response`: 422 with the fields, 404, 409 ...);
        an :class:`~tornado.web.HTTPError` with a ``reason`` gets
        ``{"error": reason}``; other client errors the message Flask gives
        the status (:func:`app.errors.http_error_message`); server errors
        ``{"error": "internal server error"}``. A 405 carries ``Allow``
        (RFC 9110 section 15.5.6).
        """
        exc_info = kwargs.get("exc_info")
        error = exc_info[1] if exc_info else None
        mapped = error_response(self.flask_app, error) if error is not None else None
        if mapped is not None:
            status_code, body = mapped
            self.set_status(status_code)
        elif status_code >= 500:
            body = {"error": "internal server error"}
        elif isinstance(error, tornado.web.HTTPError) and error.reason:
            body = {"error": error.reason}
        else:
            body = {"error": http_error_message(status_code)}
        if status_code == 405:
            self.set_header("Allow", allow_header(self.implemented_methods()))
        self.set_header("Content-Type", "application/json")
        self.finish(self.json_bytes(body))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """Domain errors are answers, not failures: log only real errors."""
        if value is not None and error_response(self.flask_app, value) is not None:
            return
        super().log_exception(typ, value, tb)

    def flush(self, include_footers: bool = False) -> Any:
        if not self._headers_written:  # the session cookie must go out with the headers
            self._save_session()
        self.bytes_sent += sum(len(chunk) for chunk in self._write_buffer)
        return super().flush(include_footers)
