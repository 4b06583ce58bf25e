"""Flask's session, login and URLs on the native side.

One login serves both sides: native handlers read and write Flask's own signed
session cookie (:mod:`tornado_handlers.flask_session`), know who logged in
through Flask-Login, and build links to Flask views.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.sessions import SecureCookieSession
from tornado.log import gen_log

from app.auth.service import user_data
from app.session_cookies import CookieTooLarge
from tornado_handlers import flask_session
from tornado_handlers.flask_session import SessionUser
from tornado_handlers.flask_urls import build_flask_url
from tornado_handlers.mixins.executor import ExecutorMixin
from wsgi_bridge.compat import response_headers


class FlaskSessionMixin(ExecutorMixin):
    """:attr:`session`, :attr:`current_user`, :meth:`load_user`, :meth:`flash`, :meth:`flask_url`.

    Call :meth:`save_session` before the headers are first flushed (``BaseHandler.flush``
    does) so a changed session goes out with the response.

    :ivar flask_app: the Flask app whose session cookie, users and URL map to use.
    """

    flask_app: Flask
    _flask_session: SecureCookieSession | None = None

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
        (also for a tampered or expired cookie). Flask-Login's session
        protection applies first, as in a Flask view: another client
        fingerprint (address, ``User-Agent``) than at login makes the login
        not fresh, or, in ``"strong"`` mode, anonymous
        (:func:`~tornado_handlers.flask_session.protect_session`).
        """
        session = self.session
        if session:
            identifier = flask_session.login_identifier(
                self.flask_app, self.request.remote_ip or "", self.request.headers
            )
            flask_session.protect_session(self.flask_app, session, identifier)
        return flask_session.session_user(session)

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

        :param endpoint: e.g. ``"auth.login"``, ``"public.index"``.
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

    def save_session(self) -> None:
        """Add the session's ``Set-Cookie`` (and ``Vary: Cookie``) as Flask would.

        Runs inside ``flush``, also while an error is being answered, so a
        cookie that cannot be written (no ``SECRET_KEY``, an unsupported
        cookie setting) is logged and left out rather than raised. A cookie
        over ``MAX_COOKIE_SIZE`` is logged as an ERROR and still sent (only the
        browser can drop it); in debug it raises
        :class:`~app.session_cookies.CookieTooLarge` (a 500, without the cookie).
        """
        session = self._flask_session
        if session is None:
            return
        if session.accessed and "Cookie" not in response_headers(self).get_list("Vary"):
            self.add_header("Vary", "Cookie")
        try:
            cookie = flask_session.session_cookie(self.flask_app, session)
        except CookieTooLarge:
            self._flask_session = None  # the error answer goes out without it
            raise  # debug: a 500 (logged by the check)
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
