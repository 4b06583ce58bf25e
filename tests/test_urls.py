"""Shared URL building: Flask templates link to native routes, native handlers to Flask views."""

from __future__ import annotations

import httpx
import pytest
import webtest
from flask import Flask
from werkzeug.routing import BuildError

from app.native_urls import EXTENSION_KEY, native_url
from config import Settings
from server.build import build_hybrid
from tests.support.server import ServerFactory
from tornado_handlers.flask_urls import build_flask_url


def test_templates_link_to_native_routes_by_name(testapp: webtest.TestApp) -> None:
    page = testapp.get("/tasks")
    health = page.html.find("a", string="Health")
    assert health is not None and health["href"] == "/healthz"
    assert 'const path = "/ws/tasks";' in page.text
    assert "/ws/tasks`" not in page.text  # no hard-coded path left in the templates


def test_native_url_names_unknown_routes_and_a_missing_route_table(flask_app: Flask) -> None:
    """The Flask side imports nothing of the native side: the composition root hands it in."""
    with flask_app.app_context():
        assert native_url("task_detail", 7) == "/api/tasks/7"
        with pytest.raises(KeyError, match="nope not found"):
            native_url("nope")
    flask_app.extensions.pop(EXTENSION_KEY)
    with flask_app.app_context(), pytest.raises(RuntimeError, match=r"server\.build_hybrid"):
        native_url("healthz")


def test_native_url_uses_the_running_applications_table(settings: Settings) -> None:
    hybrid = build_hybrid(settings)
    try:
        assert hybrid.flask_app.extensions[EXTENSION_KEY] == hybrid.application.reverse_url
        with hybrid.flask_app.app_context():
            assert native_url("task_detail", 12) == hybrid.application.reverse_url(
                "task_detail", 12
            )
    finally:
        hybrid.close()


def test_build_flask_url_matches_url_for(flask_app: Flask) -> None:
    with flask_app.test_request_context("/", base_url="http://example.test"):
        from flask import url_for

        for endpoint, values in [
            ("tasks.detail", {"task_id": 3}),
            ("tasks_api.index", {"status": "queued", "limit": 5}),
            ("auth.login", {"next": "/tasks/1", "_anchor": "top"}),
            ("static", {"filename": "style.css"}),
        ]:
            built = build_flask_url(flask_app, endpoint, values, host="example.test")
            assert built == url_for(endpoint, **values)
        external = build_flask_url(
            flask_app, "tasks.detail", {"task_id": 3}, host="example.test", external=True
        )
        assert external == url_for("tasks.detail", task_id=3, _external=True)
    with pytest.raises(BuildError):
        build_flask_url(flask_app, "tasks.nope", {})


def test_build_flask_url_honours_the_mount(settings: Settings) -> None:
    hybrid = build_hybrid(settings.model_copy(update={"flask_mount": "/legacy"}))
    try:
        url = build_flask_url(hybrid.flask_app, "tasks.detail", {"task_id": 3})
        assert url == "/legacy/tasks/3"
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
