"""``GET /``: the home page, served by Flask; it links to every feature's pages."""

from __future__ import annotations

from flask import Blueprint, render_template

blueprint = Blueprint("public", __name__)


@blueprint.get("/")
def index() -> str:
    """The home page: what the service is, and links to its parts."""
    return render_template("public/index.html")
