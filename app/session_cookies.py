"""The session cookie's size check, one for both sides.

Browsers keep a cookie of at least 4096 bytes, name, value and attributes
together (RFC 6265, section 6.1), and drop a larger one silently -- the session
with it: the user is logged out, flashed messages vanish. Werkzeug's own check
warns once per process at most; :func:`check_cookie_size` logs an ERROR on
every oversized ``Set-Cookie`` (each one is a user losing a session), naming
the cookie, its size and the limit (``MAX_COOKIE_SIZE``, Flask's setting,
4093 by default), and raises :class:`CookieTooLarge` in debug so a developer
sees a 500 at once.

Flask's side is :class:`SessionInterface` (``app.session_interface``, set by
:func:`app.create_app`); native handlers call the same check from
:func:`tornado_handlers.flask_session.session_cookie`. Both measure the
``Set-Cookie`` value as Werkzeug's :func:`~werkzeug.http.dump_cookie` builds it.
"""

from __future__ import annotations

import logging

from flask import Flask
from flask.sessions import SecureCookieSessionInterface, SessionMixin
from flask.wrappers import Response

log = logging.getLogger(__name__)


class CookieTooLarge(RuntimeError):
    """A ``Set-Cookie`` is over ``MAX_COOKIE_SIZE`` in debug (``app.debug``)."""


def check_cookie_size(flask_app: Flask, name: str, header: str) -> None:
    """Log an ERROR, and raise in debug, if the ``Set-Cookie`` ``header`` is too large.

    :param flask_app: the app; its ``MAX_COOKIE_SIZE`` (bytes; 0 turns the check
        off) is the limit, its ``debug`` says whether to raise.
    :param name: the cookie's name, for the message.
    :param header: the whole ``Set-Cookie`` value: ``name=value; Path=/; ...``.
    :raises CookieTooLarge: in debug, if ``header`` is over the limit.
    """
    limit = int(flask_app.config.get("MAX_COOKIE_SIZE", 4093))
    size = len(header)  # as Werkzeug measures it (dump_cookie)
    if not limit or size <= limit:
        return
    message = (
        f"the session cookie {name!r} is too large: {size} bytes, over the limit of "
        f"{limit} (MAX_COOKIE_SIZE); browsers drop it, and the session with it: "
        "keep less in the session"
    )
    log.error(message)
    if flask_app.debug:
        raise CookieTooLarge(message)


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, with :func:`check_cookie_size` on each cookie written."""

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        """Write the cookie as Flask does, then check the ``Set-Cookie`` it added.

        :raises CookieTooLarge: in debug, for an oversized session cookie (the
            cookie is taken out of the response again: the error answer has none).
        """
        name = self.get_cookie_name(app)
        before = len(response.headers.getlist("Set-Cookie"))
        super().save_session(app, session, response)
        written = response.headers.getlist("Set-Cookie")[before:]
        for header in written:
            if header.startswith(f"{name}="):
                try:
                    check_cookie_size(app, name, header)
                except CookieTooLarge:
                    kept = [h for h in response.headers.getlist("Set-Cookie") if h != header]
                    response.headers.setlist("Set-Cookie", kept)
                    raise
