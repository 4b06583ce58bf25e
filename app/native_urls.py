"""``native_url(name, *args)``: Flask code and templates link to native Tornado routes.

Native routes are named in the route table (``tornado.web.url(..., name=...)``
in :mod:`tornado_handlers.routes`); this reverses those names instead of
hard-coding paths, the way ``url_for`` does for Flask endpoints::

    <a href="{{ native_url('healthz') }}">Health</a>            {# /healthz #}
    <a href="{{ native_url('task_detail', task.id) }}">JSON</a>  {# /api/tasks/7 #}

Native routes live at the server's root, not under ``FLASK_MOUNT``, so the
result is used as is.

The composition root (:func:`tornado_handlers.application.build_hybrid`)
attaches the running Tornado application's ``reverse_url`` with
:func:`attach_native_urls`. A Flask app made without it (WebTest, ``manage.py
shell``) builds the same route table on first use, so templates render the
same links everywhere.
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


def _route_table_reverse(flask_app: Flask) -> NativeReverse:
    """Reverse names with the route table itself, without a running server."""
    from tornado.routing import ReversibleRuleRouter

    from tornado_handlers.routes import make_routes
    from wsgi_bridge import WSGIContainer

    executor = flask_app.extensions["executor"]
    router = ReversibleRuleRouter(
        make_routes(flask_app, executor, WSGIContainer(flask_app, executor))
    )

    def reverse(name: str, *args: object) -> str:
        path = router.reverse_url(name, *args)
        if path is None:
            raise KeyError(f"{name} not found in named urls")
        return path

    return reverse


def native_url(name: str, *args: object) -> str:
    """Return the path of the native route called ``name``, filled with ``args``.

    A Jinja global (``{{ native_url('healthz') }}``) and a plain function
    inside an app context.

    :param name: the ``name=`` of a rule in :mod:`tornado_handlers.routes`.
    :param args: one value per capture group of the rule's pattern, in order;
        each is converted with ``str`` and percent-encoded (Tornado's
        :meth:`~tornado.web.URLSpec.reverse`).
    :returns: an absolute path, e.g. ``"/api/tasks/7"``.
    :raises KeyError: if no native rule has that name.
    :raises AssertionError: if the number of ``args`` does not match the
        pattern's groups (Tornado's check).
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    reverse = app.extensions.get(EXTENSION_KEY)
    if reverse is None:
        reverse = _route_table_reverse(app)
        attach_native_urls(app, reverse)
    return reverse(name, *args)


def init_app(app: Flask) -> None:
    """Register :func:`native_url` as a Jinja global of ``app``."""
    app.add_template_global(native_url)
