"""The ported ``GET /api/tasks/<id>`` answers exactly like the Flask view it shadows."""

from __future__ import annotations

import httpx
import pytest
from flask import Flask

from app import create_app
from tests.conftest import LiveServer, ServerFactory
from tests.parity import (
    COMPARED_HEADERS,
    ParityRequest,
    Reply,
    assert_parity,
    assert_same,
    differences,
    native_handler_for,
)
from tests.test_tasks_pages import wait_for_final
from tornado_handlers.tasks_api import TaskDetailHandler

TASK_TIMES = ["created_at", "started_at", "finished_at"]

# Flask-Login reads the session after every Flask request, so every Flask
# response says ``Vary: Cookie``. The ported handler never reads the cookie and
# its answer does not depend on it, so it rightly leaves ``Vary`` out (see
# test_vary_is_the_one_intended_difference). Everything else must match.
DETAIL_HEADERS = tuple(name for name in COMPARED_HEADERS if name != "vary")


def finished_task(server: LiveServer) -> int:
    """Create a primes task through Flask and wait until it is final; return its id."""
    created = httpx.post(
        f"{server.url}/api/tasks", json={"kind": "primes", "params": {"limit": 100}}
    )
    assert created.status_code == 201, created.text
    task_id = int(created.json()["id"])
    wait_for_final(server.hybrid.flask_app, task_id)
    return task_id


def test_the_native_rule_serves_the_ported_path(live_server: ServerFactory) -> None:
    server = live_server()
    assert native_handler_for(server.hybrid.application, "/api/tasks/1") is TaskDetailHandler
    assert native_handler_for(server.hybrid.application, "/api/tasks/1/notes") is None
    assert native_handler_for(server.hybrid.application, "/api/tasks") is None


def test_task_detail_matches_flask(live_server: ServerFactory) -> None:
    server = live_server()
    task_id = finished_task(server)
    _flask, native = assert_parity(
        server, "GET", f"/api/tasks/{task_id}", compare_headers=DETAIL_HEADERS
    )
    assert native.json()["status"] == "succeeded"
    assert native.headers["content-type"] == "application/json"
    assert "x-request-id" in native.headers  # set by BaseHandler, not compared


def test_unknown_task_is_the_same_json_404(live_server: ServerFactory) -> None:
    server = live_server()
    flask, native = assert_parity(server, "GET", "/api/tasks/4242", compare_headers=DETAIL_HEADERS)
    assert (flask.status, native.status) == (404, 404)
    assert native.json() == {"error": "no such task"}


def test_head_matches_flask(live_server: ServerFactory) -> None:
    server = live_server()
    task_id = finished_task(server)
    _flask, native = assert_parity(
        server, "HEAD", f"/api/tasks/{task_id}", compare_headers=DETAIL_HEADERS
    )
    assert native.status == 200
    assert native.body == b""
    assert_parity(server, "HEAD", "/api/tasks/4242", compare_headers=DETAIL_HEADERS)


def test_leading_zeros_and_query_strings_match_flask(live_server: ServerFactory) -> None:
    server = live_server()
    task_id = finished_task(server)
    assert_parity(server, "GET", f"/api/tasks/000{task_id}", compare_headers=DETAIL_HEADERS)
    assert_parity(
        server, "GET", f"/api/tasks/{task_id}?fields=id&x=%FF", compare_headers=DETAIL_HEADERS
    )


def test_an_id_beyond_the_database_integer_fails_alike(live_server: ServerFactory) -> None:
    """A known bug, ported faithfully: an id no database integer holds is a 500, not a 404.

    A port keeps the old behaviour, bugs included; fix them afterwards, on
    both sides, in their own change (docs/migration.md, step 4).
    """
    server = live_server()
    _flask, native = assert_parity(
        server, "GET", "/api/tasks/99999999999999999999999", compare_headers=DETAIL_HEADERS
    )
    assert native.status == 500
    assert native.json() == {"error": "internal server error"}


def test_a_task_in_progress_matches_ignoring_volatile_fields(live_server: ServerFactory) -> None:
    server = live_server()
    created = httpx.post(
        f"{server.url}/api/tasks", json={"kind": "sleep", "params": {"steps": 20, "delay": 0.05}}
    )
    task_id = created.json()["id"]
    assert_parity(
        server,
        "GET",
        f"/api/tasks/{task_id}",
        compare_headers=DETAIL_HEADERS,
        ignore=["status", "progress", "result", *TASK_TIMES],
    )
    wait_for_final(server.hybrid.flask_app, task_id)


def test_vary_is_the_one_intended_difference(live_server: ServerFactory) -> None:
    server = live_server()
    with pytest.raises(AssertionError) as raised:
        assert_parity(server, "GET", "/api/tasks/4242")
    assert str(raised.value).splitlines()[1:] == ["  header vary: flask 'Cookie', native None"]


def test_parity_under_a_flask_mount(live_server: ServerFactory) -> None:
    """With ``FLASK_MOUNT=/legacy`` the port keeps its URL: ``/legacy/api/tasks/<id>``."""
    server = live_server(flask_mount="/legacy")
    application = server.hybrid.application
    assert native_handler_for(application, "/legacy/api/tasks/1") is TaskDetailHandler
    created = httpx.post(
        f"{server.url}/legacy/api/tasks", json={"kind": "primes", "params": {"limit": 100}}
    )
    assert created.headers["location"] == "/legacy/api/tasks/1"
    wait_for_final(server.hybrid.flask_app, 1)
    assert_parity(server, "GET", "/legacy/api/tasks/1", compare_headers=DETAIL_HEADERS)
    assert_parity(server, "GET", "/legacy/api/tasks/2", compare_headers=DETAIL_HEADERS)


def divergent_stats_app(settings: object, executor: object) -> Flask:
    """The app plus a Flask ``/api/stats`` that disagrees with the native one."""
    app = create_app(settings, executor)  # type: ignore[arg-type]

    @app.get("/api/stats")
    def stats() -> tuple[dict[str, object], int, dict[str, str]]:
        return {"tasks": {"queued": 0}, "total": -1}, 200, {"Cache-Control": "no-store"}

    return app


def test_the_helper_fails_with_a_readable_diff(live_server: ServerFactory) -> None:
    server = live_server(create_flask_app=divergent_stats_app)
    with pytest.raises(AssertionError) as raised:
        assert_parity(server, "GET", "/api/stats")
    message = str(raised.value)
    assert message.startswith("GET /api/stats: the native handler differs from the Flask view\n"), (
        message
    )
    assert "  header cache-control: flask 'no-store', native None" in message
    assert "  body (JSON data):" in message
    assert "    --- flask" in message and "    +++ native" in message
    assert '    -  "total": -1' in message
    assert '    +  "total": 0' in message


def test_the_helper_refuses_to_compare_flask_with_itself(live_server: ServerFactory) -> None:
    server = live_server()
    with pytest.raises(AssertionError, match="no native rule serves /api/tasks"):
        assert_parity(server, "GET", "/api/tasks")


def reply(side: str, status: int = 200, body: bytes = b"{}", **headers: str) -> Reply:
    """A hand-made :class:`Reply` (``content_type=`` becomes ``content-type``; JSON by default)."""
    headers.setdefault("content_type", "application/json")
    return Reply(side, status, {k.replace("_", "-"): v for k, v in headers.items()}, body)


def test_json_bodies_compare_as_data() -> None:
    flask = reply("flask", body=b'{"b": 1, "a": [1, 2]}\n')
    native = reply("native", body=b'{"a":[1,2],"b":1}')
    assert differences(flask, native) == []


def test_ignored_fields_and_wildcards() -> None:
    flask = reply("flask", body=b'{"id": 1, "at": "x", "items": [{"t": 1}, {"t": 2}]}')
    native = reply("native", body=b'{"id": 1, "at": "y", "items": [{"t": 3}, {"t": 4}]}')
    assert differences(flask, native, ignore=["at", "items.*.t"]) == []
    assert differences(flask, native, ignore=["at"])[0] == "body (JSON data, ignoring at):"


def test_status_headers_and_non_json_bodies_are_reported() -> None:
    flask = reply("flask", 404, b"<h1>gone</h1>", content_type="text/html", location="/a")
    native = reply("native", 200, b"<h1>here</h1>", content_type="text/html")
    request = ParityRequest("GET", "/x")
    with pytest.raises(AssertionError) as raised:
        assert_same(request, flask, native)
    assert str(raised.value).splitlines() == [
        "GET /x: the native handler differs from the Flask view",
        "  status: flask 404, native 200",
        "  header location: flask '/a', native None",
        "  body (bytes):",
        "    --- flask",
        "    +++ native",
        "    @@ -1 +1 @@",
        "    -<h1>gone</h1>",
        "    +<h1>here</h1>",
    ]


def test_json_against_html_is_a_byte_difference() -> None:
    flask = reply("flask", 500, b'{"error": "internal server error"}')
    native = reply("native", 500, b"<html>500</html>", content_type="text/html")
    found = differences(flask, native)
    assert found[0] == "header content-type: flask 'application/json', native 'text/html'"
    assert found[1] == "body (bytes):"
