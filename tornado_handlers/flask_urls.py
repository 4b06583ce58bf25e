"""``build_flask_url``: native handlers link to Flask views without hard-coded paths.

The counterpart of :func:`app.native_urls.native_url` (Flask linking to
native routes). Used through :meth:`tornado_handlers.base.BaseHandler.flask_url`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from flask import Flask

_ANCHOR_SAFE = "%!#$&'()*+,/:;=?@"  # what flask.url_for leaves unquoted in ``_anchor``


def build_flask_url(
    flask_app: Flask,
    endpoint: str,
    values: dict[str, Any],
    *,
    host: str = "localhost",
    scheme: str = "http",
    external: bool = False,
) -> str:
    """Build the URL of ``endpoint`` as :func:`flask.url_for` would inside a request.

    Uses the app's own URL map and URL defaults (``flask_app.inject_url_defaults``,
    blueprints' ``url_defaults``), with ``SCRIPT_NAME`` set to the Flask mount
    (``FLASK_MOUNT``, ``settings.flask_mount``) exactly as the WSGI bridge sets
    it, so links match the ones Flask generates for itself. No request context
    is pushed; pure and cheap, safe on the IOLoop thread.

    :param flask_app: the app whose ``url_map`` to use; ``extensions["settings"]``
        gives the mount (empty when absent).
    :param endpoint: e.g. ``"auth.login"``; a leading ``"."`` is not
        supported (there is no current blueprint outside Flask).
    :param values: the rule's variables; others become the query string;
        ``_anchor`` adds ``#fragment`` and ``_method`` picks the rule by method,
        as in ``url_for``.
    :param host: ``Host`` of the current request, for ``external``.
    :param scheme: ``http`` or ``https``, for ``external``.
    :param external: return an absolute URL (``scheme://host/path``).
    :returns: e.g. ``"/legacy/auth/login"``.
    :raises werkzeug.routing.BuildError: unknown endpoint or missing values.
    """
    values = dict(values)
    anchor = values.pop("_anchor", None)
    method = values.pop("_method", None)
    settings = flask_app.extensions.get("settings")
    mount = getattr(settings, "flask_mount", "") or ""
    flask_app.inject_url_defaults(endpoint, values)
    adapter = flask_app.url_map.bind(host, script_name=mount or "/", url_scheme=scheme)
    url = adapter.build(endpoint, values, method=method, force_external=external)
    if anchor is not None:
        url += "#" + quote(str(anchor), safe=_ANCHOR_SAFE)
    return url
