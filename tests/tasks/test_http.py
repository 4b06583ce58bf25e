"""The example's routes over real sockets: HTTP details, the bridge, shared models.

``HEAD``, ``OPTIONS`` and ``405`` on the native task routes, the bytes of their
JSON, oversized bodies and JSON content types on the notes of both sides, the
task pages and API through the bridge, and tasks a dead process left behind.
"""

from __future__ import annotations

import time

import httpx
import pytest
import webtest
from flask import Flask
from sqlalchemy.orm import Session

from tests.support.server import ServerFactory, assert_head_is_get_without_the_body, raw_exchange

FLASK_MESSAGE_405 = "The method is not allowed for the requested URL."


@pytest.mark.parametrize("path", ["/api/stats", "/api/tasks/1"])
def test_head_on_native_task_routes_is_get_without_the_body(
    live_server: ServerFactory, path: str
) -> None:
    assert_head_is_get_without_the_body(live_server().url, path)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", "/api/stats", "GET, HEAD, OPTIONS"),
        ("DELETE", "/api/v2/tasks/1/notes", "GET, HEAD, OPTIONS, POST"),
    ],
)
def test_native_task_405_carries_allow_and_flasks_message(
    live_server: ServerFactory, method: str, path: str, allow: str
) -> None:
    server = live_server()
    response = httpx.request(method, server.url + path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert response.headers["content-type"] == "application/json"
    assert response.content == b'{"error":"%s"}\n' % FLASK_MESSAGE_405.encode()


def test_flask_405_of_the_task_api_keeps_allow_with_our_body(live_server: ServerFactory) -> None:
    server = live_server()
    api = httpx.delete(server.url + "/api/tasks")
    assert (api.status_code, api.json()) == (405, {"error": FLASK_MESSAGE_405})
    assert api.headers["allow"] == "GET, HEAD, OPTIONS, POST"


def test_options_on_the_native_notes(live_server: ServerFactory) -> None:
    server = live_server()
    response = httpx.options(server.url + "/api/v2/tasks/1/notes")
    assert (response.status_code, response.content) == (200, b"")
    methods = set(response.headers["allow"].split(", "))
    assert {"GET", "HEAD", "OPTIONS"} <= methods


def test_native_task_json_has_flasks_bytes(live_server: ServerFactory) -> None:
    """Sorted keys, compact separators, a final newline: what ``jsonify`` writes."""
    server = live_server()
    stats = httpx.get(server.url + "/api/stats")
    assert stats.content == (
        b'{"tasks":{"cancelled":0,"failed":0,"interrupted":0,"queued":0,"running":0,"succeeded":0},'
        b'"total":0}\n'
    )
    with server.hybrid.flask_app.app_context():
        expected = server.hybrid.flask_app.json.response(stats.json()).get_data()
    assert stats.content == expected
    unknown = httpx.get(server.url + "/api/tasks/7")
    flask = webtest.TestApp(server.hybrid.flask_app).get("/api/tasks/7", expect_errors=True)
    assert unknown.content == flask.body == b'{"error":"no such task"}\n'


def test_oversized_notes_get_what_the_readme_says(live_server: ServerFactory) -> None:
    """``MAX_BODY_SIZE``: Flask's notes get the bridge's 413, native notes Tornado's bare 400."""
    server = live_server(max_body_size=1024)
    body = b'{"body": "' + b"x" * 2000 + b'"}'
    head = "POST {} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    head += f"Content-Length: {len(body)}\r\n\r\n"
    native = raw_exchange(server, head.format("/api/v2/tasks/1/notes").encode() + body)
    assert native == b"HTTP/1.1 400 Bad Request\r\n\r\n"
    flask = raw_exchange(server, head.format("/api/tasks/1/notes").encode() + body)
    status_line, _, rest = flask.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 413 Request Entity Too Large"
    assert b"content-type: text/plain" in rest.lower()
    small = httpx.post(server.url + "/api/v2/tasks/1/notes", json={"body": "fits"})
    assert small.status_code == 404  # under the limit: the handler runs


@pytest.mark.parametrize("content_type", ["text/plain", None, "application/x-www-form-urlencoded"])
def test_notes_need_a_json_content_type_on_both_sides(
    live_server: ServerFactory, content_type: str | None
) -> None:
    """A JSON object sent without a JSON ``Content-Type`` is no JSON at all (400 on both sides)."""
    server = live_server()
    created = httpx.post(f"{server.url}/api/tasks", json={"kind": "sleep", "params": {"delay": 0}})
    task_id = created.json()["id"]
    headers = {"Content-Type": content_type} if content_type else {}
    answers = {
        path: httpx.post(server.url + path, content=b'{"body": "x"}', headers=headers)
        for path in (f"/api/tasks/{task_id}/notes", f"/api/v2/tasks/{task_id}/notes")
    }
    assert {(r.status_code, r.content) for r in answers.values()} == {
        (400, b'{"error":"the body must be a JSON object"}\n')
    }
    for suffix in ("+json", ""):
        ok = httpx.post(
            f"{server.url}/api/v2/tasks/{task_id}/notes",
            content=b'{"body": "x"}',
            headers={
                "Content-Type": f"application/problem{suffix}"
                if suffix
                else "application/json; charset=utf-8"
            },
        )
        assert ok.status_code == 201


def test_native_task_routes_send_no_etag_like_flask(live_server: ServerFactory) -> None:
    """Tornado would add an ETag and answer If-None-Match with 304; Flask does neither."""
    server = live_server()
    created = httpx.post(f"{server.url}/api/tasks", json={"kind": "sleep", "params": {"delay": 0}})
    task_id = created.json()["id"]
    for path in (f"/api/tasks/{task_id}", "/api/stats", "/healthz"):
        first = httpx.get(server.url + path)
        assert "etag" not in first.headers
        again = httpx.get(server.url + path, headers={"If-None-Match": "*"})
        assert again.status_code == 200


def test_native_stats_read_the_same_models(live_server: ServerFactory) -> None:
    server = live_server()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/api/stats").json()["total"] == 0
        created = client.post(
            "/api/tasks", json={"kind": "sleep", "params": {"steps": 1, "delay": 0}}
        )
        assert created.status_code == 201
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            stats = client.get("/api/stats").json()
            if stats["tasks"]["succeeded"] == 1:
                break
            time.sleep(0.02)
        assert stats == {
            "tasks": {
                "queued": 0,
                "running": 0,
                "succeeded": 1,
                "failed": 0,
                "interrupted": 0,
                "cancelled": 0,
            },
            "total": 1,
        }
        assert "x-request-id" in client.get("/api/stats").headers


def test_task_pages_and_api_through_the_bridge(live_server: ServerFactory) -> None:
    server = live_server()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        home = client.get("/")
        assert home.status_code == 200 and 'href="/tasks"' in home.text
        tasks = client.get("/tasks")
        assert tasks.status_code == 200 and "Start a task" in tasks.text
        assert client.get("/api/tasks").json() == {"tasks": []}


def test_tasks_left_unfinished_are_marked_interrupted_at_start(
    flask_app: Flask, live_server: ServerFactory
) -> None:
    from app.database import call_in_session
    from app.tasks.models import Task

    def insert(session: Session) -> None:
        for status in ("queued", "running", "succeeded"):
            session.add(Task(kind="sleep", params={}, status=status))

    call_in_session(flask_app, insert)  # as a process that died would leave them
    server = live_server()
    tasks = httpx.get(f"{server.url}/api/tasks").json()["tasks"]
    assert {t["id"]: t["status"] for t in tasks} == {
        1: "interrupted",
        2: "interrupted",
        3: "succeeded",
    }
    assert tasks[-1]["error"] == "interrupted: the server stopped before the task finished"
