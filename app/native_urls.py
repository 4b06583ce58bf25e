"""``native_url(name, *args)``: Flask code and templates link to native Tornado routes.

Native routes are named in the route table (``tornado.web.url(..., name=...)``
in ``server/routes.py`` and the features' rules); this reverses those names
instead of hard-coding paths, the way ``url_for`` does for Flask endpoints::

    <a href="{{ native_url('healthz') }}">Health</a>            {# /healthz #}
    <a href="{{ native_url('order_detail', order.id) }}">JSON</a>  {# /api/orders/7 #}

Native routes live at the server's root, not under ``FLASK_MOUNT``, so the
result is used as is.

The Flask side knows nothing of the route table: the composition root
(:func:`server.build.build_hybrid`) hands the Tornado application's
``reverse_url`` in with :func:`attach_native_urls`.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, current_app

NativeReverse = Callable[..., str]
"""``reverse(name, *args) -> path``, like :meth:`tornado.web.Application.reverse_url`."""

EXTENSION_KEY = "native_urls"
"""Where the reverser lives: ``flask_app.extensions["native_urls"]``."""


def attach_native_urls(flask_app: Flask, reverse: NativeReverse) -> None:
    """Make :func:`native_url` use ``reverse`` (e.g. ``application.reverse_url``)."""
    flask_app.extensions[EXTENSION_KEY] = reverse


def native_url(name: str, *args: object) -> str:
    """Return the path of the native route called ``name``, filled with ``args``.

    A Jinja global (``{{ native_url('healthz') }}``) and a plain function
    inside an app context.

    :param name: the ``name=`` of a native rule.
    :param args: one value per capture group of the rule's pattern, in order;
        each is converted with ``str`` and percent-encoded (Tornado's
        :meth:`~tornado.web.URLSpec.reverse`).
    :returns: an absolute path, e.g. ``"/api/orders/7"``.
    :raises KeyError: if no native rule has that name.
    :raises RuntimeError: if no route table was attached (an app made by
        ``create_app`` alone, outside :func:`server.build.build_hybrid`).
    :raises AssertionError: if the number of ``args`` does not match the
        pattern's groups (Tornado's check).
    """
    reverse: NativeReverse | None = current_app.extensions.get(EXTENSION_KEY)
    if reverse is None:
        raise RuntimeError(
            "native_url() needs the route table: build the app with "
            "server.build_hybrid(), which attaches it (attach_native_urls)"
        )
    return reverse(name, *args)


def init_app(app: Flask) -> None:
    """Register :func:`native_url` as a Jinja global of ``app``."""
    app.add_template_global(native_url)
