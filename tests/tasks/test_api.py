"""The JSON API for tasks (WebTest, WSGI level)."""

from __future__ import annotations

import pytest
import webtest
from flask import Flask

from tests.tasks.support import wait_for_final


def test_create_list_and_read(testapp: webtest.TestApp, flask_app: Flask) -> None:
    created = testapp.post_json("/api/tasks", {"kind": "primes", "params": {"limit": 1000}})
    assert created.status_code == 201
    assert created.headers["Location"] == "/api/tasks/1"
    assert created.json["status"] == "queued"
    assert created.json["params"] == {"limit": 1000}

    task = wait_for_final(flask_app, 1)
    assert task.status == "succeeded"
    assert task.result == {"count": 168, "limit": 1000}

    detail = testapp.get("/api/tasks/1").json
    assert detail["status"] == "succeeded"
    assert detail["progress"] == 100
    assert detail["finished_at"] is not None
    listing = testapp.get("/api/tasks").json["tasks"]
    assert [t["id"] for t in listing] == [1]
    assert testapp.get("/api/tasks?status=failed").json["tasks"] == []


def test_defaults_fill_missing_params(testapp: webtest.TestApp) -> None:
    created = testapp.post_json("/api/tasks", {"kind": "sleep", "params": {"delay": 0}})
    assert created.json["params"] == {"steps": 10, "delay": 0.0}


def test_body_that_is_not_a_json_object_is_400(testapp: webtest.TestApp) -> None:
    bad = testapp.post("/api/tasks", "{not json", content_type="application/json", status=400)
    assert bad.json == {"error": "the body must be a JSON object"}
    listing = testapp.post_json("/api/tasks", [1, 2], status=400)
    assert listing.json["error"] == "the body must be a JSON object"


def test_invalid_fields_are_422_naming_each(testapp: webtest.TestApp) -> None:
    wrong_kind = testapp.post_json("/api/tasks", {"kind": "mine"}, status=422)
    assert wrong_kind.json == {
        "error": "validation failed",
        "fields": {"kind": "must be one of: primes, sleep"},
    }
    wrong = testapp.post_json(
        "/api/tasks", {"kind": "sleep", "params": {"steps": "many", "extra": 1}}, status=422
    )
    assert set(wrong.json["fields"]) == {"params.steps", "params.extra"}
    assert testapp.get("/api/tasks").json["tasks"] == []  # nothing half-written


def test_unknown_task_and_method_are_json_errors(testapp: webtest.TestApp) -> None:
    assert testapp.get("/api/tasks/42", status=404).json == {"error": "no such task"}
    assert testapp.delete("/api/tasks/42", status=405).json["error"].startswith("The method")
    assert testapp.get("/api/tasks?status=lost", status=422).json["error"].startswith("status")


def test_a_failing_task_records_its_error(testapp: webtest.TestApp, flask_app: Flask) -> None:
    from app.tasks import kinds

    def explode(params: object, report: object) -> dict[str, object]:
        raise RuntimeError("boom")

    original = kinds.KINDS["sleep"]
    kinds.KINDS["sleep"] = kinds.TaskKind("sleep", original.params_model, explode, "x")
    try:
        testapp.post_json("/api/tasks", {"kind": "sleep"})
        task = wait_for_final(flask_app, 1)
    finally:
        kinds.KINDS["sleep"] = original
    assert task.status == "failed"
    assert task.error == "RuntimeError: boom"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"steps": True}, "params.steps"),
        ({"steps": 5.0}, "params.steps"),
        ({"steps": "5"}, "params.steps"),
        ({"delay": True}, "params.delay"),
        ({"delay": "0.5"}, "params.delay"),
    ],
)
def test_params_are_strict(testapp: webtest.TestApp, params: dict[str, object], field: str) -> None:
    """JSON ``true`` is not an integer, ``"5"`` not a number: no coercion (pydantic strict)."""
    wrong = testapp.post_json("/api/tasks", {"kind": "sleep", "params": params}, status=422)
    assert list(wrong.json["fields"]) == [field]
    assert testapp.get("/api/tasks").json["tasks"] == []


def test_an_integer_is_still_a_valid_float(testapp: webtest.TestApp) -> None:
    created = testapp.post_json("/api/tasks", {"kind": "sleep", "params": {"steps": 1, "delay": 0}})
    assert created.json["params"] == {"steps": 1, "delay": 0.0}


def test_task_and_note_bodies_are_strict(testapp: webtest.TestApp) -> None:
    wrong = testapp.post_json("/api/tasks", {"kind": "sleep", "name": 5}, status=422)
    assert list(wrong.json["fields"]) == ["name"]
    testapp.post_json("/api/tasks", {"kind": "sleep", "params": {"steps": 1, "delay": 0}})
    note = testapp.post_json("/api/tasks/1/notes", {"body": True}, status=422)
    assert note.json["fields"] == {"body": "Input should be a valid string"}


@pytest.mark.parametrize("task_id", ["0", "2147483648", "99999999999999999999999"])
def test_ids_outside_the_integer_range_are_unknown_tasks(
    testapp: webtest.TestApp, task_id: str
) -> None:
    """Turned away by the ``<task_id:...>`` rule, before any query, as ``no such task``."""
    for path in (f"/api/tasks/{task_id}", f"/api/tasks/{task_id}/notes"):
        assert testapp.get(path, status=404).json == {"error": "no such task"}
    posted = testapp.post_json(f"/api/tasks/{task_id}/notes", {"body": "x"}, status=404)
    assert posted.json == {"error": "no such task"}
    page = testapp.get(f"/tasks/{task_id}", status=404)
    assert page.content_type == "text/html" and "no such task" in page.text


def test_the_largest_id_is_looked_up(testapp: webtest.TestApp) -> None:
    assert testapp.get("/api/tasks/2147483647", status=404).json == {"error": "no such task"}
    assert testapp.get("/api/tasks/2147483647/notes", status=404).json == {"error": "no such task"}


def test_flask_405_has_a_sorted_allow(testapp: webtest.TestApp) -> None:
    response = testapp.delete("/api/tasks/1", status=405)
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert response.json == {"error": "The method is not allowed for the requested URL."}


def test_parse_task_id_takes_ascii_digits_in_range_only() -> None:
    from app.tasks.service import TASK_ID_MAX, TaskNotFound, parse_task_id

    assert parse_task_id("007") == 7
    assert parse_task_id(str(TASK_ID_MAX)) == 2**31 - 1
    for bad in ("0", str(TASK_ID_MAX + 1), "", " 7", "+7", "1_0", "٣", "-1"):
        with pytest.raises(TaskNotFound):
            parse_task_id(bad)
