"""Native routes that use the login and session Flask created.

``GET /api/me`` reads who logged in through Flask's login form;
``GET|PUT /api/preferences`` changes Flask's session from the native side, and
the next Flask page sees the change (the theme, and a flash message).
"""

from __future__ import annotations

import tornado.web

from app.validation import InvalidInput
from tornado_handlers.base import BaseHandler

THEME_KEY = "theme"
"""Session key of the colour theme; ``app/templates/base.html`` reads it."""

THEMES = ("dark", "light")
"""The themes :class:`PreferencesHandler` accepts; ``light`` is the default."""


class MeHandler(BaseHandler):
    """``GET /api/me``: the user logged in through Flask.

    200 ``{"user": {"id": int, "email": str}, "logout_url": str}``, or 401
    ``{"error": "login required", "login_url": str}`` when anonymous -- also
    for a tampered or expired cookie, or an account deleted since the login.
    Both URLs point at Flask's pages (built with :meth:`flask_url`).
    """

    async def get(self) -> None:
        user = await self.load_user()
        if user is None:
            self.write_json(
                {"error": "login required", "login_url": self.flask_url("auth.login")}, 401
            )
            return
        self.write_json({"user": user, "logout_url": self.flask_url("auth.logout")})


class PreferencesHandler(BaseHandler):
    """``GET|PUT /api/preferences``: ``{"theme": "light" | "dark"}``, kept in Flask's session.

    Anonymous visitors may set it too (the session exists without a login).
    ``PUT`` takes a JSON object and also queues a flash message for the next
    Flask page. Errors: 415 unless ``Content-Type: application/json``, 400
    for a body that is not a JSON object, 422 naming ``theme``.

    CSRF: this writes state on the strength of a cookie, so a ``PUT`` that
    carries the session cookie needs the session's CSRF token in ``X-CSRFToken``
    (from the page's ``<meta name="csrf-token">``, the token Flask forms use:
    ``BaseHandler``'s ``CSRFMixin``), else 400. Taking only JSON, and the
    ``SameSite=Lax`` cookie, are further layers, not the defence.
    """

    def get(self) -> None:
        self.write_json({"theme": self.session.get(THEME_KEY, "light")})

    def put(self) -> None:
        content_type = self.request.headers.get("Content-Type", "").split(";")[0].strip()
        if content_type.lower() != "application/json":
            raise tornado.web.HTTPError(415, reason="the body must be application/json")
        theme = self.json_body().get("theme")
        if theme not in THEMES:
            raise InvalidInput({"theme": f"must be one of: {', '.join(THEMES)}"})
        self.session[THEME_KEY] = theme
        self.flash(f"Theme set to {theme}.", "success")
        self.write_json({"theme": theme})
