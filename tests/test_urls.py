"""Shared URL building: Flask templates link to native routes, native handlers to Flask views."""

from __future__ import annotations

import httpx
import pytest
import webtest
from flask import Flask, url_for
from werkzeug.routing import BuildError

from app.native_urls import EXTENSION_KEY, native_url
from config import PROJECT_ROOT, Settings
from server.build import Hybrid, build_hybrid
from tests.support.routes import add_native_route, with_views
from tests.support.server import ServerFactory
from tornado_handlers.base import BaseHandler
from tornado_handlers.flask_urls import build_flask_url

SKELETON_TEMPLATES = PROJECT_ROOT / "app" / "templates"


class ItemHandler(BaseHandler):
    """Test-only: a native rule with a capture group, named ``test_item``."""

    def get(self, item_id: str) -> None:
        """``{"id": item_id}``."""
        self.write_json({"id": int(item_id)})


def add_item_rule(hybrid: Hybrid) -> None:
    """Add the native rule ``test_item``: ``/api/_test/items/([0-9]+)``."""
    add_native_route(hybrid, r"/api/_test/items/([0-9]+)", ItemHandler, name="test_item")


def add_item_views(app: Flask) -> None:
    """Test-only Flask views: ``test_item`` (``/_test/items/<int:item_id>``), ``test_items``."""

    def view(**_values: object) -> str:
        return ""

    app.add_url_rule("/_test/items/<int:item_id>", "test_item", view)
    app.add_url_rule("/api/_test/items", "test_items", view)


def test_templates_link_to_native_routes_by_name(testapp: webtest.TestApp) -> None:
    page = testapp.get("/")
    health = page.html.find("a", string="Health")
    assert health is not None and health["href"] == "/healthz"
    for template in SKELETON_TEMPLATES.rglob("*.html"):  # no hard-coded path left
        assert '"/healthz"' not in template.read_text(), template


def test_native_url_names_unknown_routes_and_a_missing_route_table(hybrid: Hybrid) -> None:
    """The Flask side imports nothing of the native side: the composition root hands it in."""
    add_item_rule(hybrid)
    flask_app = hybrid.flask_app
    with flask_app.app_context():
        assert native_url("healthz") == "/healthz"
        assert native_url("test_item", 7) == "/api/_test/items/7"
        with pytest.raises(KeyError, match="nope not found"):
            native_url("nope")
    flask_app.extensions.pop(EXTENSION_KEY)
    with flask_app.app_context(), pytest.raises(RuntimeError, match=r"server\.build_hybrid"):
        native_url("healthz")


def test_native_url_uses_the_running_applications_table(hybrid: Hybrid) -> None:
    add_item_rule(hybrid)
    assert hybrid.flask_app.extensions[EXTENSION_KEY] == hybrid.application.reverse_url
    with hybrid.flask_app.app_context():
        assert native_url("test_item", 12) == hybrid.application.reverse_url("test_item", 12)
        assert native_url("me") == hybrid.application.reverse_url("me") == "/api/me"


def test_build_flask_url_matches_url_for(flask_app: Flask) -> None:
    add_item_views(flask_app)
    with flask_app.test_request_context("/", base_url="http://example.test"):
        for endpoint, values in [
            ("test_item", {"item_id": 3}),
            ("test_items", {"status": "queued", "limit": 5}),
            ("auth.login", {"next": "/a/page", "_anchor": "top"}),
            ("public.index", {}),
            ("static", {"filename": "style.css"}),
        ]:
            built = build_flask_url(flask_app, endpoint, values, host="example.test")
            assert built == url_for(endpoint, **values)
        external = build_flask_url(
            flask_app, "test_item", {"item_id": 3}, host="example.test", external=True
        )
        assert external == url_for("test_item", item_id=3, _external=True)
    with pytest.raises(BuildError):
        build_flask_url(flask_app, "auth.nope", {})


def test_build_flask_url_honours_the_mount(settings: Settings) -> None:
    mounted = settings.model_copy(update={"flask_mount": "/legacy"})
    hybrid = build_hybrid(mounted, with_views(add_item_views))
    try:
        url = build_flask_url(hybrid.flask_app, "test_item", {"item_id": 3})
        assert url == "/legacy/_test/items/3"
        assert build_flask_url(hybrid.flask_app, "auth.login", {}) == "/legacy/auth/login"
    finally:
        hybrid.close()


def test_native_handlers_link_to_flask_under_a_mount(live_server: ServerFactory) -> None:
    server = live_server(flask_mount="/legacy")
    me = httpx.get(f"{server.url}/api/me")
    assert me.json()["login_url"] == "/legacy/auth/login"
    login_page = httpx.get(server.url + me.json()["login_url"])
    assert login_page.status_code == 200
    assert 'action="/legacy/auth/login"' in login_page.text
    home = httpx.get(f"{server.url}/legacy/")
    assert 'href="/healthz"' in home.text  # native routes stay at the root
