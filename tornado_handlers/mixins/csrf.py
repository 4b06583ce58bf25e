"""CSRF protection of state-changing native handlers, with Flask-WTF's token."""

from __future__ import annotations

from typing import ClassVar

import tornado.web

from tornado_handlers import flask_csrf, flask_session
from tornado_handlers.mixins.session import FlaskSessionMixin


class CSRFMixin(FlaskSessionMixin):
    """Require Flask-WTF's CSRF token on unsafe requests that carry the session cookie.

    In ``prepare``: a request whose method is in ``WTF_CSRF_METHODS`` (``POST``,
    ``PUT``, ``PATCH``, ``DELETE``) and that carries Flask's session cookie -- so it
    may act on a login or session -- must send the token of that session, as Flask
    forms do: the ``X-CSRFToken`` or ``X-CSRF-Token`` header (``WTF_CSRF_HEADERS``;
    pages read it from ``<meta name="csrf-token">``), or a ``csrf_token`` form field.
    JSON bodies are no exception: the content type is not relied on as a defence.
    Over https the ``Referer`` must also be this origin (``WTF_CSRF_SSL_STRICT``), as
    Flask-WTF requires. A missing or bad token: ``400`` with
    ``{"error": "The CSRF token is missing."}`` (Flask-WTF's messages,
    :class:`tornado_handlers.flask_csrf.CSRFError`).

    Without the session cookie nothing is checked: the request carries no ambient
    authority a cross-site page could borrow. Off when ``WTF_CSRF_ENABLED`` is false.

    :cvar csrf_exempt: True for a handler that needs no token (an API that takes no
        cookie-authenticated writes), as ``csrf.exempt`` marks a Flask view.
    """

    csrf_exempt: ClassVar[bool] = False

    def check_csrf(self) -> None:
        """Apply the rule above to this request.

        :raises tornado.web.HTTPError: 400, its ``reason`` Flask-WTF's message.
        """
        config = flask_csrf.csrf_config(self.flask_app)
        if (
            self.csrf_exempt
            or not config["enabled"]
            or self.request.method not in config["methods"]
            or self.get_cookie(flask_session.cookie_name(self.flask_app)) is None
        ):
            return
        token = None
        for header in config["headers"]:
            token = self.request.headers.get(header)
            if token:
                break
        if not token:
            token = self.get_body_argument(config["field_name"], None)
        try:
            flask_csrf.validate_token(self.flask_app, self.session, token)
            if self.request.protocol == "https" and config["ssl_strict"]:
                referrer = self.request.headers.get("Referer")
                flask_csrf.same_origin_referrer(referrer, self.request.host)
        except flask_csrf.CSRFError as error:
            raise tornado.web.HTTPError(400, reason=str(error)) from None
