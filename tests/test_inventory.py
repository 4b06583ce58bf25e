"""``manage.py routes`` (``tornado_handlers.inventory``) against the ported route."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor

import pytest
from flask import Flask
from tornado.web import url

from app import create_app
from app.feature import Feature
from config import Settings
from server.build import Hybrid, build_hybrid
from server.inventory import (
    Route,
    build_inventory,
    format_table,
    handler_methods,
    sample_path,
)
from tests.support.cli import environment, run
from tornado_handlers.base import BaseHandler
from tornado_handlers.tasks.handlers import TaskStatsHandler


@pytest.fixture
def hybrid(settings: Settings) -> Iterator[Hybrid]:
    """The hybrid as ``manage.py routes`` builds it (not serving)."""
    built = build_hybrid(settings)
    yield built
    built.close()


def inventory(hybrid: Hybrid, mount: str = "") -> dict[tuple[str, str], Route]:
    """The inventory rows by ``(side, handler)``."""
    routes = build_inventory(hybrid.application.wildcard_router.rules, hybrid.flask_app, mount)
    return {(route.side, route.handler): route for route in routes}


def test_the_ported_detail_is_flagged_on_both_sides(hybrid: Hybrid) -> None:
    routes = inventory(hybrid)
    native = routes["native", "tornado_handlers.tasks.ported.TaskDetailHandler"]
    assert native.path == "/api/tasks/([0-9]+)"
    assert native.methods == ["GET"]  # HEAD and OPTIONS are left out on both sides
    assert (native.status, native.twins) == ("ported", ["tasks_api.detail"])
    flask = routes["flask", "tasks_api.detail"]
    assert (flask.status, flask.shadowed_by, flask.unreachable) == (
        "shadowed",
        "/api/tasks/([0-9]+)",
        [],
    )


def test_neighbours_of_the_port_stay_on_flask(hybrid: Hybrid) -> None:
    routes = inventory(hybrid)
    for endpoint in ("tasks_api.index", "tasks_api.create", "tasks.detail"):
        assert routes["flask", endpoint].status == "flask", endpoint


def test_native_routes_without_a_flask_twin(hybrid: Hybrid) -> None:
    routes = inventory(hybrid)
    for handler in ("account.MeHandler", "account.PreferencesHandler", "health.HealthHandler"):
        assert routes["native", f"tornado_handlers.{handler}"].status == "native-only"


def test_under_a_mount_the_port_still_shadows(settings: Settings) -> None:
    built = build_hybrid(settings.model_copy(update={"flask_mount": "/legacy"}))
    try:
        routes = inventory(built, "/legacy")
        flask = routes["flask", "tasks_api.detail"]
        assert flask.path == "/legacy/api/tasks/<task_id:task_id>"
        assert (flask.status, flask.shadowed_by) == ("shadowed", "/legacy/api/tasks/([0-9]+)")
    finally:
        built.close()


def with_post_only_twin(
    settings: Settings, executor: Executor, features: Iterable[Feature]
) -> Flask:
    """The app plus a Flask ``POST /api/stats`` -- a method the native handler lacks."""
    app = create_app(settings, executor, features)
    app.add_url_rule("/api/stats", "legacy_stats", lambda: "", methods=["POST"])
    return app


def test_a_native_rule_hides_every_method_of_the_path(settings: Settings) -> None:
    """Tornado routes by path: Flask's POST is unreachable (the native GET handler answers 405)."""
    built = build_hybrid(settings, with_post_only_twin)
    try:
        routes = inventory(built)
        flask = routes["flask", "legacy_stats"]
        assert (flask.status, flask.shadowed_by, flask.unreachable) == (
            "shadowed",
            "/api/stats",
            ["POST"],
        )
        table = format_table(list(routes.values()))
        assert "shadowed by /api/stats; POST get 405" in table
    finally:
        built.close()


def test_head_and_options_are_left_out_on_both_sides(hybrid: Hybrid) -> None:
    """Every route of both sides answers them, so no row lists them."""
    for route in build_inventory(hybrid.application.wildcard_router.rules, hybrid.flask_app):
        assert not {"HEAD", "OPTIONS"} & set(route.methods), route
    routes = inventory(hybrid)
    assert routes["native", "tornado_handlers.tasks.handlers.TaskNotesHandler"].methods == [
        "GET",
        "POST",
    ]
    assert routes["native", "tornado_handlers.account.PreferencesHandler"].methods == [
        "GET",
        "PUT",
    ]
    assert routes["flask", "tasks_api.notes"].methods == ["GET"]


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


def test_custom_converters_get_sample_values(hybrid: Hybrid) -> None:
    """``<task_id:...>`` is an int converter: its sample path matches the native ``([0-9]+)``."""
    rule = next(
        r for r in hybrid.flask_app.url_map.iter_rules() if r.endpoint == "tasks_api.detail"
    )
    assert sample_path(rule) == "/api/tasks/1"
    assert sample_path(rule, "/legacy") == "/legacy/api/tasks/1"


def test_only_request_handlers_are_listed(hybrid: Hybrid) -> None:
    rules = [*hybrid.application.wildcard_router.rules, url(r"/x", TaskStatsHandler, name="x")]
    routes = build_inventory(rules, hybrid.flask_app)
    assert [r.path for r in routes if r.side == "native"][-1] == "/x"
    assert all(r.handler != "wsgi_bridge.handler.WSGIFallbackHandler" for r in routes)


def test_the_command_reports_the_port(database_url: str) -> None:
    result = run("routes", "--json", env=environment(database_url))
    assert result.returncode == 0, result.stderr
    routes = {(r["side"], r["handler"]): r for r in json.loads(result.stdout)}
    assert routes["native", "tornado_handlers.tasks.ported.TaskDetailHandler"]["status"] == "ported"
    detail = routes["flask", "tasks_api.detail"]
    assert detail["status"] == "shadowed"
    assert detail["shadowed_by"] == "/api/tasks/([0-9]+)"
    assert detail["unreachable"] == []
    table = run("routes", env=environment(database_url)).stdout
    assert "ported (tasks_api.detail)" in table
    assert "shadowed by /api/tasks/([0-9]+)" in table
