"""Helpers for the tests of the example feature, tasks (test modules import them from here)."""

from __future__ import annotations

from flask import Flask

from app.extensions import db
from app.tasks.models import Task
from wsgi_bridge.testing import wait_for


def wait_for_final(flask_app: Flask, task_id: int, timeout: float = 10) -> Task:
    """Poll the database until task ``task_id`` is final (it runs on the executor).

    :returns: the task, detached from its session.
    :raises AssertionError: if it is still ``queued`` or ``running`` after ``timeout`` s.
    """
    found: list[Task] = []

    def final() -> bool:
        with flask_app.app_context():
            task = db.session.get(Task, task_id)
            assert task is not None
            if task.status in ("queued", "running"):
                return False
            db.session.expunge(task)
            found.append(task)
            return True

    assert wait_for(final, timeout, step=0.02), f"task {task_id} did not finish in {timeout} s"
    return found[0]
