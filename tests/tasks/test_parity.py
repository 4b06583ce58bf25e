"""Native handlers answer exactly like the Flask views they port.

``GET /api/tasks/<id>`` (the worked example, same URL) and the notes endpoints
(Flask ``/api/tasks/<id>/notes``, native ``/api/v2/tasks/<id>/notes``). The
helper itself is tested in ``tests/test_parity_helper.py``.
"""

from __future__ import annotations

import httpx
import pytest

from tests.support.parity import COMPARED_HEADERS, Reply, assert_parity, native_handler_for
from tests.support.server import LiveServer, ServerFactory
from tests.tasks.support import wait_for_final
from tornado_handlers.tasks.handlers import TaskNotesHandler
from tornado_handlers.tasks.ported import TaskDetailHandler

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
        server, "GET", f"/api/tasks/{task_id}", compare_headers=DETAIL_HEADERS, same_bytes=True
    )
    assert native.json()["status"] == "succeeded"
    assert native.headers["content-type"] == "application/json"
    assert native.body.endswith(b"}\n") and b", " not in native.body  # Flask's bytes
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


# 2**31 - 1 is the last valid id: an unknown task, but one the query may look for.
OUT_OF_RANGE_IDS = ["0", "2147483648", "99999999999999999999999", "000"]


@pytest.mark.parametrize("task_id", [*OUT_OF_RANGE_IDS, "2147483647"])
def test_an_id_beyond_the_database_integer_is_an_unknown_task(
    live_server: ServerFactory, task_id: str
) -> None:
    """Ids outside 1..2**31-1 are 404 ``no such task`` on both sides, before any query.

    Ported faithfully at first (a 500 on both sides: SQLite's driver
    overflowed, PostgreSQL's ``integer`` refused it), then fixed on both sides
    in a change of its own (docs/migration.md, step 4).
    """
    server = live_server()
    for method in ("GET", "HEAD"):
        _flask, native = assert_parity(
            server, method, f"/api/tasks/{task_id}", compare_headers=DETAIL_HEADERS, same_bytes=True
        )
        assert native.status == 404
    assert native_reply_json(server, f"/api/tasks/{task_id}") == {"error": "no such task"}


def native_reply_json(server: LiveServer, path: str) -> object:
    """``GET path`` over the socket; the JSON body."""
    return httpx.get(server.url + path).json()


def test_a_method_the_port_lacks_is_the_same_405(live_server: ServerFactory) -> None:
    """Same status, ``Allow`` (RFC 9110 section 15.5.6) and message on both sides."""
    server = live_server()
    for method in ("DELETE", "POST", "PUT"):
        _flask, native = assert_parity(
            server, method, "/api/tasks/1", compare_headers=DETAIL_HEADERS, same_bytes=True
        )
        assert native.status == 405
        assert native.headers["allow"] == "GET, HEAD, OPTIONS"
        assert native.json() == {"error": "The method is not allowed for the requested URL."}


def test_options_matches_flask(live_server: ServerFactory) -> None:
    server = live_server()
    _flask, native = assert_parity(
        server, "OPTIONS", "/api/tasks/1", compare_headers=DETAIL_HEADERS
    )
    assert (native.status, native.headers["allow"], native.body) == (
        200,
        "GET, HEAD, OPTIONS",
        b"",
    )


def notes_parity(server: LiveServer, method: str, task_id: object, **kwargs: object) -> Reply:
    """:func:`assert_parity` of Flask's ``/api/tasks/<id>/notes`` and native ``/api/v2/...``."""
    _flask, native = assert_parity(
        server,
        method,
        f"/api/tasks/{task_id}/notes",
        native_path=f"/api/v2/tasks/{task_id}/notes",
        compare_headers=DETAIL_HEADERS,
        **kwargs,  # type: ignore[arg-type]
    )
    return native


def test_the_notes_port_serves_its_own_path(live_server: ServerFactory) -> None:
    server = live_server()
    assert native_handler_for(server.hybrid.application, "/api/v2/tasks/1/notes") is (
        TaskNotesHandler
    )


def test_notes_match_flask_on_good_input(live_server: ServerFactory) -> None:
    server = live_server()
    task_id = finished_task(server)
    assert notes_parity(server, "GET", task_id, same_bytes=True).json() == {"notes": []}
    httpx.post(f"{server.url}/api/tasks/{task_id}/notes", json={"body": "first"})
    assert notes_parity(server, "GET", task_id, same_bytes=True).json()["notes"][0]["body"] == (
        "first"
    )
    assert notes_parity(server, "HEAD", task_id).body == b""
    assert notes_parity(server, "OPTIONS", task_id).headers["allow"] == "GET, HEAD, OPTIONS, POST"


@pytest.mark.parametrize(
    "body",
    [
        b"{oops",
        b"[1]",
        b"",
        b"{}",
        b'{"body": 7}',
        b'{"body": true}',
        b'{"body": "   "}',
        b'{"body": "' + b"x" * 2001 + b'"}',
        b'{"body": "hi", "extra": 1}',
    ],
    ids=["invalid-json", "not-object", "empty", "missing", "int", "bool", "blank", "long", "extra"],
)
def test_notes_match_flask_on_bad_bodies(live_server: ServerFactory, body: bytes) -> None:
    """Same status and JSON for every bad body; nothing is written by either side."""
    server = live_server()
    task_id = finished_task(server)
    headers = {"Content-Type": "application/json"}
    native = notes_parity(server, "POST", task_id, body=body, headers=headers, same_bytes=True)
    assert native.status in (400, 422)
    for missing in ("4242", *OUT_OF_RANGE_IDS):
        native = notes_parity(server, "POST", missing, body=body, headers=headers)
        if missing in OUT_OF_RANGE_IDS:  # the id is checked before the body, as routing is
            assert native.status == 404
    assert notes_parity(server, "GET", task_id).json() == {"notes": []}


@pytest.mark.parametrize("task_id", ["4242", "2147483647", *OUT_OF_RANGE_IDS])
def test_notes_of_an_unknown_or_out_of_range_task_match_flask(
    live_server: ServerFactory, task_id: str
) -> None:
    server = live_server()
    assert notes_parity(server, "GET", task_id, same_bytes=True).json() == {"error": "no such task"}
    native = notes_parity(server, "POST", task_id, json_body={"body": "hi"}, same_bytes=True)
    assert (native.status, native.json()) == (404, {"error": "no such task"})


def test_notes_methods_the_port_lacks_match_flask(live_server: ServerFactory) -> None:
    server = live_server()
    for method in ("DELETE", "PUT", "PATCH"):
        native = notes_parity(server, method, 1, same_bytes=True)
        assert (native.status, native.headers["allow"]) == (405, "GET, HEAD, OPTIONS, POST")


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
        ignore=["status", "progress", "result", "attempts", *TASK_TIMES],
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
