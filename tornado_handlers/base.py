"""The base class of every native JSON handler: the mixins of :mod:`tornado_handlers.mixins`.

.. warning::
   The IOLoop thread must never block: every database call and other blocking
   work goes through ``run_in_executor`` / ``run_in_session``
   (:mod:`tornado_handlers.mixins.executor` says why).
"""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Any, ClassVar

from flask import Flask

from app.security_headers import security_headers
from tornado_handlers.mixins import (
    CSRFMixin,
    FlaskSessionMixin,
    InFlightMixin,
    JSONErrorsMixin,
    MethodParityMixin,
    RequestIdMixin,
)
from wsgi_bridge.compat import headers_written, pending_output


class BaseHandler(
    CSRFMixin,
    FlaskSessionMixin,
    JSONErrorsMixin,
    MethodParityMixin,
    RequestIdMixin,
    InFlightMixin,
):
    """A native JSON handler with the service's shared dependencies.

    Route kwargs (passed to :meth:`initialize` from the route table,
    ``app.feature.Shared.kwargs()``):

    :param executor: the shared :class:`~concurrent.futures.ThreadPoolExecutor`.
    :param flask_app: the Flask app, whose database, config and session handlers share.

    What it combines (:mod:`tornado_handlers.mixins`): blocking work on the
    executor (``run_in_executor``, ``run_in_session``), JSON in and out as
    Flask (``json_body``, ``write_json``), errors as Flask answers them, Flask's
    session, login and URLs (``session``, ``current_user``, ``flask_url``),
    ``HEAD``/``OPTIONS``/``Allow`` as Flask, in-flight counting for the
    graceful shutdown, and Flask-WTF's CSRF token on unsafe requests that carry
    the session cookie (``CSRFMixin``; ``csrf_exempt = True`` opts out). Every
    response carries ``X-Request-ID`` (the id the access log shows) and the
    security headers (:mod:`app.security_headers`), error answers included; every
    log line written for the request has ``request_id``
    (:class:`~tornado_handlers.mixins.RequestIdMixin`).

    What a shadow comparison of the route (``SHADOW_ROUTES``,
    :mod:`server.cutover.shadow`) compares, declared per handler class:

    :cvar shadow_ignore: JSON body fields left out, as dotted paths (``"updated_at"``,
        ``"items.*.id"``): fields that may change between the two runs.
    :cvar shadow_ignore_headers: response header names (any case) left out of the
        compared ones (``server.cutover.compare.COMPARED_HEADERS``), e.g. ``("vary",)``.
    """

    shadow_ignore: ClassVar[tuple[str, ...]] = ()
    shadow_ignore_headers: ClassVar[tuple[str, ...]] = ()

    bytes_sent: int

    def initialize(self, executor: Executor, flask_app: Flask) -> None:
        """Take the route table's shared dependencies (Tornado calls it per request)."""
        self.executor = executor
        self.flask_app = flask_app
        self.bytes_sent = 0

    def set_default_headers(self) -> None:
        """Every response carries ``X-Request-ID`` (``RequestIdMixin``) and the security headers."""
        super().set_default_headers()
        # Application settings: set_default_headers runs before initialize().
        hsts = int(self.settings.get("hsts_seconds", 0))
        for name, value in security_headers(hsts, self.request.protocol == "https"):
            self.set_header(name, value)

    def prepare(self) -> None:
        """Count the request in flight, then check its CSRF token (``CSRFMixin``)."""
        super().prepare()
        self.check_csrf()

    def flush(self, include_footers: bool = False) -> Any:
        """Write the session cookie with the headers, count body bytes for the access log."""
        if not headers_written(self):
            self.save_session()
        self.bytes_sent += sum(len(chunk) for chunk in pending_output(self))
        return super().flush(include_footers)
