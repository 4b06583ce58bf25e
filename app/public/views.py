"""``GET /``: the home page, served by Flask; it links to every feature's pages.

Also ``GET /favicon.ico``, where browsers look for the site's icon whatever the
page links: without it every first page load logs a 404.
"""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, send_from_directory
from werkzeug.wrappers import Response

blueprint = Blueprint("public", __name__)


@blueprint.get("/")
def index() -> str:
    """The home page: what the service is, and links to its parts."""
    return render_template("public/index.html")


@blueprint.get("/favicon.ico")
def favicon() -> Response:
    """The site's icon, ``app/static/favicon.ico`` (also linked by ``base.html``)."""
    assert current_app.static_folder is not None  # Flask(__name__) has app/static
    return send_from_directory(
        current_app.static_folder, "favicon.ico", mimetype="image/vnd.microsoft.icon"
    )
