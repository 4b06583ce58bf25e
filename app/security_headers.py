"""The security headers every response carries, on both sides: one definition.

=============================  ==========================================================
header                          value, and why
=============================  ==========================================================
``X-Content-Type-Options``      ``nosniff``: browsers honour ``Content-Type`` (no sniffing
                                a JSON or text answer into HTML or script)
``X-Frame-Options``             ``DENY``: no page of the service inside a frame
                                (clickjacking), for browsers without CSP level 2
``Content-Security-Policy``     ``frame-ancestors 'none'``: the same, the standard way
``Referrer-Policy``             ``strict-origin-when-cross-origin``: other sites see only
                                the origin, never the path or query
``Strict-Transport-Security``   ``max-age=HSTS_SECONDS; includeSubDomains``, only when
                                ``HSTS_SECONDS`` > 0 and only on https requests (RFC 6797
                                §7.2: not over plain http)
=============================  ==========================================================

Applied by :func:`init_app` (Flask's ``after_request``: pages, the JSON API, static
files), ``BaseHandler.set_default_headers`` (native handlers and their error
answers) and the bridge's ``default_headers`` mount option (``server/routes.py``:
the 404/413/503/504 the bridge writes itself). A response that already sets one of
these names keeps its own value.
"""

from __future__ import annotations

from flask import Flask, Response, request

__all__ = ["HSTS_SECONDS_KEY", "SECURITY_HEADERS", "init_app", "security_headers"]

HSTS_SECONDS_KEY = "HSTS_SECONDS"
"""The ``app.config`` key of ``HSTS_SECONDS`` (``Settings.flask_config``)."""

SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", "frame-ancestors 'none'"),
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
)
"""The headers every response carries, ``(name, value)``; HSTS apart (per request)."""


def security_headers(hsts_seconds: int = 0, https: bool = False) -> list[tuple[str, str]]:
    """Return the ``(name, value)`` headers for a response.

    :param hsts_seconds: ``HSTS_SECONDS``; ``> 0`` adds ``Strict-Transport-Security``.
    :param https: whether the request came over https (``request.protocol`` natively,
        ``request.is_secure`` in Flask; behind a trusted proxy, its
        ``X-Forwarded-Proto``). HSTS is sent on https only (RFC 6797 §7.2).
    :returns: :data:`SECURITY_HEADERS`, plus HSTS when it applies.
    """
    headers = list(SECURITY_HEADERS)
    if hsts_seconds > 0 and https:
        headers.append(("Strict-Transport-Security", f"max-age={hsts_seconds}; includeSubDomains"))
    return headers


def init_app(app: Flask) -> None:
    """Add the headers to every Flask response (``after_request``), unless set by the view."""

    def add_security_headers(response: Response) -> Response:
        hsts = int(app.config.get(HSTS_SECONDS_KEY, 0))
        for name, value in security_headers(hsts, request.is_secure):
            response.headers.setdefault(name, value)
        return response

    app.after_request(add_security_headers)
