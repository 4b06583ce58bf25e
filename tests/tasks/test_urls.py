"""The example's links across the sides: its templates name native routes, its views are built.

``native_url('task_progress')`` in the tasks pages, ``native_url('task_detail', id)``,
and ``build_flask_url`` of the tasks endpoints (``<task_id:...>`` rules).
"""

from __future__ import annotations

import pytest
import webtest
from flask import Flask, url_for
from werkzeug.routing import BuildError

from app.native_urls import native_url
from config import Settings
from server.build import Hybrid, build_hybrid
from tornado_handlers.flask_urls import build_flask_url


def test_the_tasks_page_links_to_native_routes_by_name(testapp: webtest.TestApp) -> None:
    page = testapp.get("/tasks")
    health = page.html.find("a", string="Health")
    assert health is not None and health["href"] == "/healthz"
    assert 'const path = "/ws/tasks";' in page.text
    assert "/ws/tasks`" not in page.text  # no hard-coded path left in the templates


def test_native_url_reverses_the_task_detail(flask_app: Flask) -> None:
    with flask_app.app_context():
        assert native_url("task_detail", 7) == "/api/tasks/7"


def test_native_url_uses_the_running_applications_table(hybrid: Hybrid) -> None:
    with hybrid.flask_app.app_context():
        assert native_url("task_detail", 12) == hybrid.application.reverse_url("task_detail", 12)


def test_build_flask_url_matches_url_for_on_task_endpoints(flask_app: Flask) -> None:
    with flask_app.test_request_context("/", base_url="http://example.test"):
        for endpoint, values in [
            ("tasks.detail", {"task_id": 3}),
            ("tasks_api.index", {"status": "queued", "limit": 5}),
            ("auth.login", {"next": "/tasks/1", "_anchor": "top"}),
        ]:
            built = build_flask_url(flask_app, endpoint, values, host="example.test")
            assert built == url_for(endpoint, **values)
        external = build_flask_url(
            flask_app, "tasks.detail", {"task_id": 3}, host="example.test", external=True
        )
        assert external == url_for("tasks.detail", task_id=3, _external=True)
    with pytest.raises(BuildError):
        build_flask_url(flask_app, "tasks.nope", {})


def test_build_flask_url_of_a_task_honours_the_mount(settings: Settings) -> None:
    hybrid = build_hybrid(settings.model_copy(update={"flask_mount": "/legacy"}))
    try:
        url = build_flask_url(hybrid.flask_app, "tasks.detail", {"task_id": 3})
        assert url == "/legacy/tasks/3"
    finally:
        hybrid.close()
