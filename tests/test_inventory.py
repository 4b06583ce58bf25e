"""``manage.py routes`` (``server.inventory``): both sides in one list, ports flagged.

The port here is test-only: Flask views under ``/api/_test/items`` and a
native rule for one of them, added to the skeleton's routes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from tornado.web import url
from werkzeug.routing import IntegerConverter

from config import Settings
from server.build import Hybrid, build_hybrid
from server.cutover.plan import CutoverPlan
from server.inventory import build_inventory, format_table, handler_methods, sample_path
from tests.support.routes import add_native_route, inventory, with_views
from tornado_handlers.account import MeHandler
from tornado_handlers.base import BaseHandler

ITEM = r"/api/_test/items/([0-9]+)"
"""The native rule of the test-only port."""


class ItemHandler(BaseHandler):
    """Test-only: the native port of Flask's ``test_items_detail``."""

    def get(self, item_id: str) -> None:
        """``{"id": item_id}``."""
        self.write_json({"id": int(item_id)})


ITEM_HANDLER = f"{ItemHandler.__module__}.{ItemHandler.__qualname__}"
"""How the inventory names :class:`ItemHandler`."""


class ItemIdConverter(IntegerConverter):
    """A converter of the app's own, as a feature may register: an ``int`` one underneath."""


def add_items(app: Flask) -> None:
    """Test-only Flask views: list, create, one item (ported natively), its notes (``GET``)."""
    app.url_map.converters["item_id"] = ItemIdConverter

    def view(**_values: object) -> str:
        return ""

    app.add_url_rule("/api/_test/items", "test_items_index", view, methods=["GET"])
    app.add_url_rule("/api/_test/items", "test_items_create", view, methods=["POST"])
    app.add_url_rule("/api/_test/items/<item_id:item_id>", "test_items_detail", view)
    app.add_url_rule("/api/_test/items/<item_id:item_id>/notes", "test_items_notes", view)


def build_ported(settings: Settings) -> Hybrid:
    """The hybrid with the test-only Flask views and the native port of one of them."""
    built = build_hybrid(settings, with_views(add_items))
    add_native_route(built, settings.flask_mount + ITEM, ItemHandler, name="test_item")
    return built


@pytest.fixture
def ported(settings: Settings) -> Iterator[Hybrid]:
    """:func:`build_ported` with these settings (not serving)."""
    built = build_ported(settings)
    yield built
    built.close()


def test_a_ported_route_is_flagged_on_both_sides(ported: Hybrid) -> None:
    routes = inventory(ported)
    native = routes["native", ITEM_HANDLER]
    assert native.path == "/api/_test/items/([0-9]+)"
    assert native.methods == ["GET"]  # HEAD and OPTIONS are left out on both sides
    assert (native.status, native.twins) == ("ported", ["test_items_detail"])
    flask = routes["flask", "test_items_detail"]
    assert (flask.status, flask.shadowed_by, flask.unreachable) == (
        "shadowed",
        "/api/_test/items/([0-9]+)",
        [],
    )
    table = format_table(list(routes.values()))
    assert "ported (test_items_detail)" in table
    assert "shadowed by /api/_test/items/([0-9]+)" in table


def test_neighbours_of_the_port_stay_on_flask(ported: Hybrid) -> None:
    routes = inventory(ported)
    for endpoint in ("test_items_index", "test_items_create", "test_items_notes"):
        assert routes["flask", endpoint].status == "flask", endpoint


def test_native_routes_without_a_flask_twin(hybrid: Hybrid) -> None:
    routes = inventory(hybrid)
    for handler in ("account.MeHandler", "account.PreferencesHandler", "health.HealthHandler"):
        assert routes["native", f"tornado_handlers.{handler}"].status == "native-only"


def test_under_a_mount_the_port_still_shadows(settings: Settings) -> None:
    built = build_ported(settings.model_copy(update={"flask_mount": "/legacy"}))
    try:
        routes = inventory(built, "/legacy")
        flask = routes["flask", "test_items_detail"]
        assert flask.path == "/legacy/api/_test/items/<item_id:item_id>"
        assert (flask.status, flask.shadowed_by) == (
            "shadowed",
            "/legacy/api/_test/items/([0-9]+)",
        )
    finally:
        built.close()


def add_post_only_twin(app: Flask) -> None:
    """A Flask ``POST /api/me`` -- a method the native handler lacks."""
    app.add_url_rule("/api/me", "legacy_me", lambda: "", methods=["POST"])


def test_a_native_rule_hides_every_method_of_the_path(settings: Settings) -> None:
    """Tornado routes by path: Flask's POST is unreachable (the native GET handler answers 405)."""
    built = build_hybrid(settings, with_views(add_post_only_twin))
    try:
        routes = inventory(built)
        flask = routes["flask", "legacy_me"]
        assert (flask.status, flask.shadowed_by, flask.unreachable) == (
            "shadowed",
            "/api/me",
            ["POST"],
        )
        table = format_table(list(routes.values()))
        assert "shadowed by /api/me; POST get 405" in table
    finally:
        built.close()


def test_head_and_options_are_left_out_on_both_sides(ported: Hybrid) -> None:
    """Every route of both sides answers them, so no row lists them."""
    for route in build_inventory(ported.application.wildcard_router.rules, ported.flask_app):
        assert not {"HEAD", "OPTIONS"} & set(route.methods), route
    routes = inventory(ported)
    assert routes["native", "tornado_handlers.account.PreferencesHandler"].methods == [
        "GET",
        "PUT",
    ]
    assert routes["flask", "auth.login"].methods == ["GET", "POST"]
    assert routes["flask", "test_items_notes"].methods == ["GET"]


def test_a_handler_without_get_has_no_head() -> None:
    class PostOnly(BaseHandler):
        def post(self) -> None:
            """Stand-in."""

    class GetOnly(BaseHandler):
        def get(self) -> None:
            """Stand-in."""

    assert PostOnly.implemented_methods() == ["OPTIONS", "POST"]
    assert GetOnly.implemented_methods() == ["GET", "HEAD", "OPTIONS"]
    assert handler_methods(PostOnly) == ["POST"]
    assert handler_methods(GetOnly) == ["GET"]


def test_custom_converters_get_sample_values(ported: Hybrid) -> None:
    """``<item_id:...>`` is an int converter: its sample path matches the native ``([0-9]+)``."""
    rule = next(
        r for r in ported.flask_app.url_map.iter_rules() if r.endpoint == "test_items_detail"
    )
    assert sample_path(rule) == "/api/_test/items/1"
    assert sample_path(rule, "/legacy") == "/legacy/api/_test/items/1"


def test_only_request_handlers_are_listed(hybrid: Hybrid) -> None:
    rules = [*hybrid.application.wildcard_router.rules, url(r"/x", MeHandler, name="x")]
    routes = build_inventory(rules, hybrid.flask_app)
    assert [r.path for r in routes if r.side == "native"][-1] == "/x"
    assert all(r.handler != "wsgi_bridge.handler.WSGIFallbackHandler" for r in routes)


def test_a_ported_route_shows_its_cutover_state(ported: Hybrid) -> None:
    """The plan in force says which side serves each ported route; other rows say nothing."""
    rules = ported.application.wildcard_router.rules
    for settings, state in (
        (("", "", ""), "native"),
        (("test_item", "", ""), "flask"),
        (("", "test_item:20", "test_item"), "canary 20% + shadow"),
        (("", "", "test_item:5"), "native + shadow 5%"),
    ):
        plan = CutoverPlan.parse(*settings, ported=["test_item"])
        routes = build_inventory(rules, ported.flask_app, plan=plan)
        by_handler = {(r.side, r.handler): r for r in routes}
        assert by_handler["native", ITEM_HANDLER].cutover == state
        assert by_handler["native", ITEM_HANDLER].as_dict()["cutover"] == state
        assert all(r.cutover is None for r in routes if r.status != "ported")
        assert f"ported (test_items_detail): {state}" in format_table(routes)


def test_without_a_plan_there_is_no_cutover_state(ported: Hybrid) -> None:
    routes = build_inventory(ported.application.wildcard_router.rules, ported.flask_app)
    assert all(route.cutover is None for route in routes)
    [row] = [line for line in format_table(routes).splitlines() if ITEM_HANDLER in line]
    assert row.endswith("ported (test_items_detail)")
