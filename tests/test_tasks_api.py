"""The JSON API for tasks (WebTest, WSGI level)."""

from __future__ import annotations

import webtest
from flask import Flask

from tests.test_tasks_pages import wait_for_final


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
