"""Flask's signed-cookie session, read and written by native handlers.

A browser that logged in through Flask carries Flask's ``session`` cookie: the
session dict, serialized with Flask's tagged JSON, signed with ``SECRET_KEY``
and a timestamp by itsdangerous (``URLSafeTimedSerializer``, salt
``"cookie-session"``, key derivation ``"hmac"``, digest SHA-1). This module reads
and writes that cookie with **Flask's own serializer and cookie settings** --
``app.session_interface.get_signing_serializer(app)`` and the interface's
``get_cookie_*`` methods, which read ``SESSION_COOKIE_*`` from ``app.config``
-- so there is no second implementation to drift from Flask's.

It is pure: no Tornado, no sockets, no database. Its caller is
:class:`tornado_handlers.mixins.FlaskSessionMixin` (in every ``BaseHandler``,
and in WebSocket handlers that mix it in).

Rules, the same as Flask's (:class:`flask.sessions.SecureCookieSessionInterface`):

* a missing, tampered or expired cookie (older than ``PERMANENT_SESSION_LIFETIME``)
  is an empty session -- an anonymous visitor, never an error;
* a modified session is written back; a session modified to empty deletes the
  cookie; a permanent session (``session.permanent``) gets ``Expires``, and is
  refreshed on every response when ``SESSION_REFRESH_EACH_REQUEST`` is on;
* Flask-Login's session protection applies (:func:`protect_session`): a
  request whose client fingerprint (:func:`login_identifier`: remote address
  and ``User-Agent``) differs from the one recorded at login gets a login that
  is not fresh ("basic") or no login at all ("strong"), as in a Flask view.

.. warning::
   Both sides write the whole session into one cookie. If Flask and a native
   handler answer two concurrent requests of the same browser and both change
   the session, the response that arrives last wins -- as with two concurrent
   Flask requests.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Flask
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_login.config import SESSION_KEYS
from flask_login.signals import session_protected
from itsdangerous import BadData, URLSafeTimedSerializer
from werkzeug.http import dump_cookie

from app.session_cookies import check_cookie_size

USER_ID_KEY = "_user_id"
"""The session key where Flask-Login keeps the logged-in user's id (a string)."""

FRESH_KEY = "_fresh"
"""The session key where Flask-Login records a fresh (password-typed) login."""

IDENTIFIER_KEY = "_id"
"""The session key where Flask-Login records the client's fingerprint at login."""

FINGERPRINT_HEADERS = ("User-Agent", "X-Forwarded-For")
"""The request headers Flask-Login's fingerprint reads (with the remote address)."""

FLASHES_KEY = "_flashes"
"""The session key where :func:`flask.flash` queues ``(category, message)`` pairs."""


@dataclass(frozen=True)
class SessionUser:
    """Who the verified session cookie says is logged in.

    :ivar id: the user's primary key (Flask-Login's ``_user_id``).
    :ivar fresh: whether the login was fresh (typed the password this session).

    The cookie is signed, so it cannot be forged, but it is not checked
    against the database: an account deleted since the login still has a valid
    cookie until it expires. Load the row (``await handler.load_user()``)
    before acting on the account.
    """

    id: int
    fresh: bool


@dataclass(frozen=True)
class SessionCookie:
    """The ``Set-Cookie`` a response must carry for the session (Flask's attributes).

    :ivar name: ``SESSION_COOKIE_NAME`` (default ``"session"``).
    :ivar value: the signed session; ``""`` when :attr:`delete` is true.
    :ivar delete: the session became empty: expire the cookie instead.
    :ivar path: ``SESSION_COOKIE_PATH``, else ``APPLICATION_ROOT`` (default ``"/"``).
    :ivar domain: ``SESSION_COOKIE_DOMAIN`` or ``None`` (host-only cookie).
    :ivar secure: ``SESSION_COOKIE_SECURE``.
    :ivar httponly: ``SESSION_COOKIE_HTTPONLY``.
    :ivar samesite: ``SESSION_COOKIE_SAMESITE`` (``"Lax"``, ``"Strict"``, ``"None"``) or ``None``.
    :ivar expires: for a permanent session, now + ``PERMANENT_SESSION_LIFETIME``
        (aware UTC); ``None`` for a browser-session cookie.
    """

    name: str
    value: str
    delete: bool
    path: str
    domain: str | None
    secure: bool
    httponly: bool
    samesite: str | None
    expires: datetime | None


def session_interface(flask_app: Flask) -> SecureCookieSessionInterface:
    """Return ``flask_app.session_interface``, which must keep sessions in signed cookies.

    :raises TypeError: if the app uses another interface (e.g. server-side
        sessions from Flask-Session): native handlers would then need that
        store, read without blocking the IOLoop.
    """
    interface = flask_app.session_interface
    if not isinstance(interface, SecureCookieSessionInterface):
        raise TypeError(
            f"native handlers share Flask's signed-cookie session only; "
            f"{type(interface).__name__} is not a SecureCookieSessionInterface"
        )
    return interface


def _serializer(flask_app: Flask) -> URLSafeTimedSerializer | None:
    return session_interface(flask_app).get_signing_serializer(flask_app)


def cookie_name(flask_app: Flask) -> str:
    """Return the session cookie's name (``SESSION_COOKIE_NAME``, default ``"session"``)."""
    return session_interface(flask_app).get_cookie_name(flask_app)


def load_session(flask_app: Flask, cookie_value: str | None) -> SecureCookieSession:
    """Verify and decode a session cookie the way Flask's ``open_session`` does.

    :param flask_app: the Flask app whose ``SECRET_KEY`` (and
        ``SECRET_KEY_FALLBACKS``) signed the cookie.
    :param cookie_value: the cookie's value, or ``None`` when absent.
    :returns: a :class:`~flask.sessions.SecureCookieSession` (a dict that
        tracks ``modified`` and ``accessed``); empty when the cookie is
        missing, its signature is wrong, it is older than
        ``PERMANENT_SESSION_LIFETIME`` (itsdangerous ``max_age``, seconds), or
        no ``SECRET_KEY`` is set. Never raises for a bad cookie.
    """
    interface = session_interface(flask_app)
    serializer = interface.get_signing_serializer(flask_app)
    if serializer is None or not cookie_value:
        return interface.session_class()
    max_age = int(flask_app.permanent_session_lifetime.total_seconds())
    try:
        data = serializer.loads(cookie_value, max_age=max_age)
    except BadData:  # BadSignature, SignatureExpired, BadPayload
        return interface.session_class()
    if not isinstance(data, dict):
        return interface.session_class()
    return interface.session_class(data)


def dump_session(flask_app: Flask, session: Mapping[str, Any]) -> str:
    """Return ``session`` (the session or any dict) signed and serialized as Flask writes it.

    :raises RuntimeError: if ``SECRET_KEY`` is not set (Flask refuses too).
    """
    serializer = _serializer(flask_app)
    if serializer is None:
        raise RuntimeError("the session is unavailable because no SECRET_KEY is set")
    return serializer.dumps(dict(session))


def session_cookie(flask_app: Flask, session: SecureCookieSession) -> SessionCookie | None:
    """Decide the ``Set-Cookie`` for ``session`` at the end of a response.

    Follows :meth:`flask.sessions.SecureCookieSessionInterface.save_session`:

    * empty and modified (e.g. cleared) -> a cookie to delete;
    * empty and untouched -> ``None`` (no cookie);
    * otherwise written when ``modified``, or when permanent and
      ``SESSION_REFRESH_EACH_REQUEST`` is on; else ``None``.

    A cookie to write is measured as Flask's would be
    (:func:`app.session_cookies.check_cookie_size`): over ``MAX_COOKIE_SIZE``
    it is logged as an ERROR each time, and refused in debug.

    :raises app.session_cookies.CookieTooLarge: in debug, for a cookie over
        ``MAX_COOKIE_SIZE`` (a :class:`RuntimeError`).
    :raises RuntimeError: if a cookie must be written and ``SECRET_KEY`` is unset.
    :raises ValueError: if ``SESSION_COOKIE_PARTITIONED`` is on (``Set-Cookie``
        ``Partitioned`` needs Python 3.14's ``http.cookies``; Tornado builds
        cookies with it).
    """
    interface = session_interface(flask_app)
    if interface.get_cookie_partitioned(flask_app):
        raise ValueError("SESSION_COOKIE_PARTITIONED is not supported by native handlers")
    if not session:
        if not session.modified:
            return None
        value, delete, expires = "", True, None
    elif interface.should_set_cookie(flask_app, session):
        value, delete = dump_session(flask_app, session), False
        expires = interface.get_expiration_time(flask_app, session)
    else:
        return None
    cookie = SessionCookie(
        name=interface.get_cookie_name(flask_app),
        value=value,
        delete=delete,
        path=interface.get_cookie_path(flask_app),
        domain=interface.get_cookie_domain(flask_app),
        secure=interface.get_cookie_secure(flask_app),
        httponly=interface.get_cookie_httponly(flask_app),
        samesite=interface.get_cookie_samesite(flask_app),
        expires=expires,
    )
    if not delete:
        check_cookie_size(flask_app, cookie.name, set_cookie_header(cookie))
    return cookie


def set_cookie_header(cookie: SessionCookie) -> str:
    """Return the ``Set-Cookie`` value Flask would send for ``cookie`` (Werkzeug's ``dump_cookie``).

    What :func:`app.session_cookies.check_cookie_size` measures, on both sides.
    """
    return dump_cookie(
        cookie.name,
        cookie.value,
        expires=cookie.expires,
        path=cookie.path,
        domain=cookie.domain,
        secure=cookie.secure,
        httponly=cookie.httponly,
        samesite=cookie.samesite,
        max_size=0,  # measured by check_cookie_size, not warned about by Werkzeug
    )


def session_user(session: SecureCookieSession) -> SessionUser | None:
    """Return who is logged in according to Flask-Login's keys, or ``None``.

    :param session: a session from :func:`load_session`.
    :returns: a :class:`SessionUser`, or ``None`` for an anonymous session or
        a ``_user_id`` that is not an integer.
    """
    raw = session.get(USER_ID_KEY)
    try:
        user_id = int(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None
    if user_id is None:
        return None
    return SessionUser(id=user_id, fresh=bool(session.get(FRESH_KEY, False)))


def login_identifier(flask_app: Flask, remote_addr: str, headers: Mapping[str, str]) -> str:
    """Return Flask-Login's client fingerprint for a request, computed by Flask-Login itself.

    Calls the app's ``LoginManager._session_identifier_generator`` (by default
    ``flask_login.utils._create_identifier``: SHA-512 of the first
    ``X-Forwarded-For`` address, else the remote address, and the
    ``User-Agent``) in a request context built from these values only
    (``test_request_context``), so a custom generator is followed too. The
    context is pushed in a copy of the current :mod:`contextvars` context and
    dropped with it: no teardown runs, nothing leaks into the caller's context.

    :param flask_app: the app whose Flask-Login ``LoginManager`` to ask.
    :param remote_addr: the client's address as Flask sees it (``REMOTE_ADDR``:
        the native request's ``remote_ip``; the bridge gives Flask the same).
    :param headers: the request's headers; only :data:`FINGERPRINT_HEADERS` are used.
    :returns: the fingerprint, as Flask-Login stores it in the session's ``_id``.
    """
    generate_identifier = flask_app.login_manager._session_identifier_generator  # type: ignore[attr-defined]
    fingerprint = {name: value for name in FINGERPRINT_HEADERS if (value := headers.get(name))}

    def generate() -> str:
        flask_app.test_request_context(
            environ_base={"REMOTE_ADDR": remote_addr}, headers=fingerprint
        ).push()  # popped with the copied context: no teardown handlers run
        return str(generate_identifier())

    return contextvars.copy_context().run(generate)


def protect_session(flask_app: Flask, session: SecureCookieSession, identifier: str) -> None:
    """Apply Flask-Login's session protection to ``session``, as a Flask view's would be.

    The rules of ``flask_login.login_manager.LoginManager._session_protection_failed``
    (Flask-Login 0.6), which Flask-Login runs when it loads the user: the mode
    is ``SESSION_PROTECTION`` in the config, else ``login_manager.session_protection``
    (``"basic"`` by default). A non-empty session whose ``_id`` differs from
    ``identifier``: in ``"basic"`` mode, or for a permanent session, the login
    is marked not fresh (``_fresh = False``); in ``"strong"`` mode Flask-Login's
    keys are removed (logged out) and ``_remember`` is set to ``"clear"``. Either
    way Flask-Login's ``session_protected`` signal is sent. The session is then
    modified, so its cookie is written back, as Flask does.

    :param flask_app: the app (its config and ``LoginManager``).
    :param session: the request's session (changed in place).
    :param identifier: the request's fingerprint, from :func:`login_identifier`.
    """
    manager = flask_app.login_manager  # type: ignore[attr-defined]
    mode = flask_app.config.get("SESSION_PROTECTION", manager.session_protection)
    if mode not in ("basic", "strong") or not session:
        return
    if session.get(IDENTIFIER_KEY) == identifier:
        return
    if mode == "basic" or session.permanent:
        if session.get(FRESH_KEY) is not False:
            session[FRESH_KEY] = False
    else:
        for key in SESSION_KEYS:
            session.pop(key, None)
        session["_remember"] = "clear"
    session_protected.send(flask_app)


def add_flash(session: SecureCookieSession, message: str, category: str = "message") -> None:
    """Queue a flash message for Flask's next ``get_flashed_messages()`` (as :func:`flask.flash`).

    :param session: the session to change (marked ``modified``).
    :param message: the text to show.
    :param category: ``"message"`` (Flask's default), ``"success"``, ``"error"`` ...
    """
    flashes = session.get(FLASHES_KEY, [])
    flashes.append((category, message))
    session[FLASHES_KEY] = flashes
