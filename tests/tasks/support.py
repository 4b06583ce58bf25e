"""Helpers for the tests of the example feature, tasks (test modules import them from here)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import pytest
from flask import Flask
from pydantic import BaseModel, ConfigDict

from app.extensions import db
from app.tasks import kinds
from app.tasks.models import Task
from wsgi_bridge.testing import wait_for

if TYPE_CHECKING:
    from playwright.sync_api import Page

WAIT_MS = 10_000
"""Milliseconds the browser may take to show an event (generous: CI machines are slow)."""


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


class NoParams(BaseModel):
    """``block`` takes no params."""

    model_config = ConfigDict(extra="forbid")


def register_blocking_kind(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Register the test-only kind ``block`` (one attempt): it runs, reporting 50 %,
    until the returned event is set. Set it at the end of the test at the latest.

    :param monkeypatch: the test's, which removes the kind afterwards.
    :returns: the gate; setting it lets every ``block`` task succeed.
    """
    gate = threading.Event()

    def run(params: NoParams, report: kinds.Report) -> dict[str, Any]:
        while not gate.wait(0.01):
            report(50)
        return {"released": True}

    monkeypatch.setitem(
        kinds.KINDS, "block", kinds.TaskKind("block", NoParams, run, "test only", max_attempts=1)
    )
    return gate


def open_watching(page: Page, url: str) -> None:
    """Open ``url`` and return once its WebSocket said ``hello``.

    The server sends ``hello`` after subscribing the socket to task events,
    so no event sent after this returns can be missed by the page.

    :raises AssertionError: if no ``hello`` arrived within :data:`WAIT_MS`.
    """
    frames: list[str | bytes] = []
    page.on("websocket", lambda socket: socket.on("framereceived", lambda f: frames.append(f)))
    page.goto(url)
    for _ in range(WAIT_MS // 50):
        if any("hello" in str(frame) for frame in frames):
            return
        page.wait_for_timeout(50)  # lets Playwright deliver the frames
    raise AssertionError(f"the WebSocket of {url} sent no hello")
