"""A task enqueued inside an outer unit of work with uncommitted writes.

``call_in_session`` joins such a unit of work (``tests/test_nested_session.py``), so
the task's row is not committed when ``enqueue`` returns. Its ``queued`` event and its
hand-over to the runner must wait for the outer commit (the runner would not see the
row, or wait for its lock), and never happen if the outer code rolls back.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import func, select

from app.auth.models import User
from app.extensions import db
from app.tasks.client import task_client
from app.tasks.models import Task
from tests.tasks.support import wait_for_final


def _watch(flask_app: Flask) -> tuple[list[str], Any]:
    seen: list[str] = []
    unsubscribe = flask_app.extensions["task_events"].subscribe(
        lambda event: seen.append(event["task"]["status"])
    )
    return seen, unsubscribe


def test_a_task_enqueued_in_an_uncommitted_unit_of_work_starts_after_its_commit(
    flask_app: Flask,
) -> None:
    seen, unsubscribe = _watch(flask_app)
    try:
        with flask_app.app_context():
            db.session.add(User(email="outer@example.com", password_hash="x"))
            db.session.flush()  # the outer unit of work has written: enqueue joins it
            enqueued = task_client(flask_app).enqueue("sleep", {"steps": 1, "delay": 0})
            assert seen == []  # nothing published, nothing handed to the runner yet
            db.session.commit()
            assert seen[:1] == ["queued"]
        final = wait_for_final(flask_app, enqueued.task["id"])
        assert final.status == "succeeded"
        assert seen[0] == "queued" and seen[-1] == "succeeded"
    finally:
        unsubscribe()


def test_a_task_enqueued_in_a_unit_of_work_that_rolls_back_never_runs(flask_app: Flask) -> None:
    seen, unsubscribe = _watch(flask_app)
    try:
        with flask_app.app_context():
            db.session.add(User(email="outer@example.com", password_hash="x"))
            db.session.flush()
            task_client(flask_app).enqueue("sleep", {"steps": 1, "delay": 0})
            db.session.rollback()
            db.session.commit()  # a later commit of the same session runs nothing dropped
            assert db.session.scalar(select(func.count()).select_from(Task)) == 0
        assert seen == []  # no "queued" event for a task that never existed
    finally:
        unsubscribe()
