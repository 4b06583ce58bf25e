"""The example's data on the one data layer of both sides: migrations, integrity, bad input.

Tasks and notes written by Flask (``/api/tasks/<id>/notes``) and natively
(``/api/v2/tasks/<id>/notes``). The skeleton's data layer is tested in
``tests/test_data_layer.py``. Runs on SQLite by default and on PostgreSQL when
``TEST_DATABASE_URL`` is set.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import flask
import httpx
import pytest
from flask import Flask
from flask_migrate import downgrade, upgrade
from sqlalchemy import func, inspect, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.database import call_in_session
from app.extensions import db
from app.tasks.models import MAX_NOTES_PER_TASK, Task, TaskNote
from tests.support.server import ServerFactory

NOTE_PATHS = {"flask": "/api/tasks/{id}/notes", "native": "/api/v2/tasks/{id}/notes"}


def make_task(flask_app: Flask, **values: object) -> int:
    """Insert a finished ``sleep`` task (``values`` override its columns); return its id."""

    def insert(session: Session) -> int:
        task = Task(kind="sleep", params={"steps": 1, "delay": 0}, status="succeeded", **values)
        session.add(task)
        session.flush()
        return task.id

    return call_in_session(flask_app, insert)


def counts(flask_app: Flask, task_id: int) -> tuple[int, int]:
    """``(rows in task_notes, tasks.note_count)`` for the task."""

    def read(session: Session) -> tuple[int, int]:
        rows = session.scalar(select(func.count()).where(TaskNote.task_id == task_id))
        counter = session.scalar(select(Task.note_count).where(Task.id == task_id))
        return int(rows or 0), int(counter or 0)

    return call_in_session(flask_app, read)


def test_upgrade_downgrade_upgrade_keeps_the_task_tables(flask_app: Flask) -> None:
    with flask_app.app_context():
        tables = set(inspect(db.engine).get_table_names())
        assert {"tasks", "task_notes", "alembic_version"} <= tables
        downgrade(revision="base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        upgrade(revision="heads")
        assert set(inspect(db.engine).get_table_names()) == tables
    assert make_task(flask_app) == 1


def test_a_note_needs_its_task(flask_app: Flask) -> None:
    def orphan(session: Session) -> None:
        session.add(TaskNote(task_id=12345, body="nobody's"))

    with pytest.raises(IntegrityError):
        call_in_session(flask_app, orphan)


def test_call_in_session_rolls_back_a_half_written_note(flask_app: Flask) -> None:
    task_id = make_task(flask_app)

    def half_then_fail(session: Session) -> None:
        session.add(TaskNote(task_id=task_id, body="first half"))
        session.flush()
        raise RuntimeError("second half failed")

    with pytest.raises(RuntimeError, match="second half failed"):
        call_in_session(flask_app, half_then_fail)
    assert counts(flask_app, task_id) == (0, 0)
    assert not flask.has_app_context()  # the pushed context was popped


def test_concurrent_notes_from_both_sides_are_exact(
    live_server: ServerFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    # Exactness under contention, not overload: admission must not shed (a loaded CI
    # machine made the queue stand for 0.5 s and 503 some writes), so CoDel gets 60 s.
    server = live_server(threads=8, queue_target=60, queue_interval=60)
    task_id = make_task(server.hybrid.flask_app)
    requests = [NOTE_PATHS["flask" if i % 2 else "native"].format(id=task_id) for i in range(200)]

    # One client per thread: a sync httpx client shared by 32 threads races on its
    # connection pool (tests/test_data_layer.py saw "[Errno 9] Bad file descriptor").
    local = threading.local()
    clients: list[httpx.Client] = []

    def post(index_path: tuple[int, str]) -> int:
        index, path = index_path
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=server.url, timeout=30)
            clients.append(local.client)
        return local.client.post(path, json={"body": f"note {index}"}).status_code

    try:
        with ThreadPoolExecutor(32) as pool:
            statuses = list(pool.map(post, enumerate(requests)))
    finally:
        for client in clients:
            client.close()
    path = NOTE_PATHS["native"].format(id=task_id)
    listed = httpx.get(f"{server.url}{path}", timeout=30).json()["notes"]

    assert statuses == [201] * 200
    rows, counter = counts(server.hybrid.flask_app, task_id)
    with capsys.disabled():
        backend = server.hybrid.settings.database_url.split(":")[0]
        print(
            f"\n  200 concurrent writes (100 Flask, 100 native) on {backend}: "
            f"rows={rows} note_count={counter}"
        )
    assert (rows, counter) == (200, 200)
    assert sorted(note["body"] for note in listed) == sorted(f"note {i}" for i in range(200))


@pytest.mark.parametrize("side", ["flask", "native"])
def test_a_failing_note_leaves_no_partial_data(live_server: ServerFactory, side: str) -> None:
    server = live_server()
    flask_app = server.hybrid.flask_app
    task_id = make_task(flask_app)

    def fill(session: Session) -> None:
        session.execute(
            update(Task).where(Task.id == task_id).values(note_count=MAX_NOTES_PER_TASK)
        )

    call_in_session(flask_app, fill)
    # The note row is inserted first, then the counter update breaks the CHECK
    # constraint: the whole transaction must go, the row included.
    response = httpx.post(
        server.url + NOTE_PATHS[side].format(id=task_id), json={"body": "one more"}
    )
    assert response.status_code == 409
    assert response.json() == {"error": "conflict with existing data"}
    assert counts(flask_app, task_id) == (0, MAX_NOTES_PER_TASK)


@pytest.mark.parametrize("side", ["flask", "native"])
@pytest.mark.parametrize(
    ("body", "status", "expected"),
    [
        (b"{oops", 400, {"error": "the body must be a JSON object"}),
        (b"[1]", 400, {"error": "the body must be a JSON object"}),
        (b"{}", 422, {"error": "validation failed", "fields": {"body": "Field required"}}),
        (
            b'{"body": 7}',
            422,
            {"error": "validation failed", "fields": {"body": "Input should be a valid string"}},
        ),
        (
            b'{"body": "   "}',
            422,
            {
                "error": "validation failed",
                "fields": {"body": "String should have at least 1 character"},
            },
        ),
        (
            b'{"body": "' + b"x" * 2001 + b'"}',
            422,
            {
                "error": "validation failed",
                "fields": {"body": "String should have at most 2000 characters"},
            },
        ),
        (
            b'{"body": "hi", "extra": 1}',
            422,
            {"error": "validation failed", "fields": {"extra": "Extra inputs are not permitted"}},
        ),
    ],
    ids=["invalid-json", "not-object", "missing", "wrong-type", "blank", "oversize", "extra"],
)
def test_bad_notes_get_the_same_answer_from_both_sides(
    live_server: ServerFactory, side: str, body: bytes, status: int, expected: dict[str, object]
) -> None:
    server = live_server()
    task_id = make_task(server.hybrid.flask_app)
    response = httpx.post(
        server.url + NOTE_PATHS[side].format(id=task_id),
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert (response.status_code, response.json()) == (status, expected)
    assert response.headers["content-type"].startswith("application/json")
    assert counts(server.hybrid.flask_app, task_id) == (0, 0)


@pytest.mark.parametrize("side", ["flask", "native"])
def test_unknown_task_is_404_on_both_sides(live_server: ServerFactory, side: str) -> None:
    server = live_server()
    url = server.url + NOTE_PATHS[side].format(id=999)
    assert httpx.get(url).json() == {"error": "no such task"}
    response = httpx.post(url, json={"body": "hello"})
    assert (response.status_code, response.json()) == (404, {"error": "no such task"})


def test_duplicate_task_name_is_409_and_writes_nothing(live_server: ServerFactory) -> None:
    server = live_server()
    new = {"kind": "sleep", "params": {"steps": 1, "delay": 0}, "name": "nightly"}
    with httpx.Client(base_url=server.url) as client:
        assert client.post("/api/tasks", json=new).status_code == 201
        duplicate = client.post("/api/tasks", json=new)
        assert (duplicate.status_code, duplicate.json()) == (
            409,
            {"error": "conflict with existing data"},
        )
        assert [t["name"] for t in client.get("/api/tasks").json()["tasks"]] == ["nightly"]
        assert client.get("/api/stats").json()["total"] == 1

    def read(session: Session) -> list[str]:
        return [row[0] for row in session.execute(text("SELECT name FROM tasks"))]

    assert call_in_session(server.hybrid.flask_app, read) == ["nightly"]


@pytest.mark.parametrize("side", ["flask", "native"])
@pytest.mark.parametrize("task_id", ["2147483648", "99999999999999999999999", "0"])
def test_ids_no_database_integer_holds_are_404_on_both_sides(
    live_server: ServerFactory, side: str, task_id: str
) -> None:
    """PostgreSQL's ``integer`` and SQLite's driver would fail the query: it is never made."""
    server = live_server()
    with httpx.Client(base_url=server.url) as client:
        url = NOTE_PATHS[side].format(id=task_id)
        for response in (client.get(url), client.post(url, json={"body": "hello"})):
            assert (response.status_code, response.json()) == (404, {"error": "no such task"})
        detail = client.get(f"/api/tasks/{task_id}")
        assert (detail.status_code, detail.json()) == (404, {"error": "no such task"})
