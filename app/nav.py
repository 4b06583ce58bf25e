"""The site's navigation bar: links that the skeleton and features add.

``base.html`` renders ``nav_links()`` in order. A feature adds its pages in its
``init_app``::

    add_nav_link(app, "Orders", "orders.index")
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app, url_for

EXTENSION_KEY = "nav_links"
"""Where the links live: ``flask_app.extensions["nav_links"]``."""


@dataclass(frozen=True)
class NavLink:
    """One link of the navigation bar.

    :ivar label: the text shown.
    :ivar endpoint: a Flask endpoint, e.g. ``"orders.index"``.
    """

    label: str
    endpoint: str

    @property
    def url(self) -> str:
        """The link's URL (``url_for(endpoint)``; needs a request context)."""
        return url_for(self.endpoint)


def add_nav_link(flask_app: Flask, label: str, endpoint: str) -> None:
    """Append a link to the navigation bar of ``flask_app``.

    :param label: the text shown, e.g. ``"Orders"``.
    :param endpoint: the Flask endpoint it points to (built lazily, per request).
    """
    flask_app.extensions.setdefault(EXTENSION_KEY, []).append(NavLink(label, endpoint))


def nav_links() -> list[NavLink]:
    """The current app's links, in the order they were added (a Jinja global)."""
    links: list[NavLink] = current_app.extensions.get(EXTENSION_KEY, [])
    return links


def init_app(flask_app: Flask) -> None:
    """Register :func:`nav_links` as a Jinja global of ``flask_app``."""
    flask_app.add_template_global(nav_links)
