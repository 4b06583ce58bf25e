"""A task's life beyond the happy path: the cap, stopping, and leases.

The kind used here, ``block``, is registered for the test only: it runs until
the test opens its gate, calling ``report`` every few milliseconds as a kind
should, so each scenario is decided by the test, not by timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import pytest
import webtest
from flask import Flask
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.orm import Session
from tornado.websocket import websocket_connect

from app.database import call_in_session, utcnow
from app.extensions import db
from app.schema_migrations import upgrade_database
from app.tasks import kinds
from app.tasks.execution import Execution
from app.tasks.models import Task
from app.tasks.runner import INTERRUPTED_ERROR, TaskRunner, recover_interrupted
from config import Settings
from server.build import build_hybrid
from tests.support.server import ServerFactory
from tornado_handlers.tasks import TasksFeature, task_runner
from wsgi_bridge.testing import wait_for

WAIT = 10.0


class BlockParams(BaseModel):
    """``block``: ``reports=False`` makes it a kind that never calls ``report``."""

    model_config = ConfigDict(extra="forbid")
    reports: bool = True


class Gate:
    """Holds every ``block`` task until :meth:`open`; counts how many run at once."""

    def __init__(self) -> None:
        self.released = threading.Event()
        self._lock = threading.Lock()
        self.running = 0
        self.most_at_once = 0
        self.started = 0

    def run(self, params: BlockParams, report: kinds.Report) -> dict[str, Any]:
        with self._lock:
            self.running += 1
            self.started += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            while True:
                if params.reports:
                    report(50)
                if self.released.wait(0.01):
                    return {"released": True}
        finally:
            with self._lock:
                self.running -= 1

    def open(self) -> None:
        self.released.set()


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    """Register the ``block`` kind; the gate opens after the test whatever happens."""
    gate = Gate()
    monkeypatch.setitem(
        kinds.KINDS, "block", kinds.TaskKind("block", BlockParams, gate.run, "test only")
    )
    yield gate
    gate.open()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Poll ``condition`` until it is true; fail naming ``what`` after ``timeout`` seconds."""
    assert wait_for(condition, timeout), f"timed out waiting until {what}"


def statuses(flask_app: Flask) -> dict[int, str]:
    """``{id: status}`` of every task, read from the database."""

    def read(session: Session) -> dict[int, str]:
        return {task.id: task.status for task in session.scalars(select(Task).order_by(Task.id))}

    return call_in_session(flask_app, read)


def task_row(flask_app: Flask, task_id: int) -> dict[str, Any]:
    """The task's ``to_dict()`` plus its lease: ``runner_id`` and ``heartbeat_at``."""

    def read(session: Session) -> dict[str, Any]:
        task = session.get_one(Task, task_id)
        return {**task.to_dict(), "runner_id": task.runner_id, "heartbeat_at": task.heartbeat_at}

    return call_in_session(flask_app, read)


def insert_tasks(flask_app: Flask, *rows: dict[str, Any]) -> None:
    """Insert one task per dict of columns (by default a ``sleep`` task without params)."""

    def insert(session: Session) -> None:
        for row in rows:
            session.add(Task(**{"kind": "sleep", "params": {}, **row}))

    call_in_session(flask_app, insert)


@pytest.fixture
def capped_app(settings: Settings, executor: ThreadPoolExecutor) -> Iterator[Flask]:
    """The Flask app with ``TASK_THREADS=2`` on a four-thread pool."""
    built = build_hybrid(settings, features=[TasksFeature(task_threads=2)], executor=executor)
    app = built.flask_app
    upgrade_database(app)
    yield app
    executor.shutdown(wait=True)
    with app.app_context():
        db.engine.dispose()


def test_at_most_task_threads_tasks_run_and_the_rest_wait_queued(
    capped_app: Flask, gate: Gate
) -> None:
    client = webtest.TestApp(capped_app)
    runner: TaskRunner = capped_app.extensions["task_runner"]
    assert runner.max_running == 2
    for _ in range(5):
        client.post_json("/api/tasks", {"kind": "block"}, status=201)
    wait_until(lambda: gate.running == 2, "two tasks run")
    time.sleep(0.2)  # room for a third to start, were the cap broken
    assert gate.started == 2
    assert runner.waiting_ids == [3, 4, 5]  # first in, first out
    assert statuses(capped_app) == {
        1: "running",
        2: "running",
        3: "queued",
        4: "queued",
        5: "queued",
    }
    gate.open()
    wait_until(lambda: set(statuses(capped_app).values()) == {"succeeded"}, "all succeed")
    assert gate.started == 5 and gate.most_at_once == 2
    # A slot is freed after its task's final status is committed, so the runner's
    # bookkeeping empties a moment after the last "succeeded" becomes visible.
    wait_until(
        lambda: runner.active_ids == frozenset() and runner.waiting_ids == [],
        "the runner holds no task",
    )


def test_task_threads_defaults_to_a_quarter_of_the_pool(flask_app: Flask) -> None:
    runner: TaskRunner = flask_app.extensions["task_runner"]
    assert flask_app.extensions["settings"].threads == 4
    assert runner.max_running == 1


def test_a_succeeded_task_carries_no_error(flask_app: Flask) -> None:
    insert_tasks(flask_app, {"status": "queued", "error": "left over from a previous life"})
    runner: TaskRunner = flask_app.extensions["task_runner"]
    runner.submit(1).result(WAIT)
    task = task_row(flask_app, 1)
    assert (task["status"], task["error"]) == ("succeeded", None)


def test_stop_interrupts_running_tasks_at_their_next_report_and_queued_ones_at_once(
    flask_app: Flask, gate: Gate
) -> None:
    runner: TaskRunner = flask_app.extensions["task_runner"]  # one task at a time
    insert_tasks(flask_app, *[{"kind": "block", "status": "queued"}] * 3)
    futures = [runner.submit(task_id) for task_id in (1, 2, 3)]
    wait_until(lambda: task_row(flask_app, 1)["progress"] == 50, "task 1 reports")
    assert runner.stop() == 2  # tasks 2 and 3 never started
    for future in futures:
        future.result(WAIT)  # the running one stopped without the gate opening
    assert not gate.released.is_set()
    assert statuses(flask_app) == {1: "interrupted", 2: "interrupted", 3: "interrupted"}
    first = task_row(flask_app, 1)
    assert first["error"] == INTERRUPTED_ERROR
    assert first["progress"] == 50 and first["finished_at"] is not None
    # Nothing starts once stopped.
    insert_tasks(flask_app, {"kind": "block", "status": "queued"})
    runner.submit(4).result(WAIT)
    assert statuses(flask_app)[4] == "interrupted" and gate.started == 1


def test_a_kind_catching_exception_still_gets_interrupted(
    flask_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    def careless(params: BlockParams, report: kinds.Report) -> dict[str, Any]:
        while True:
            with contextlib.suppress(Exception):  # a mistake TaskInterrupted forgives
                report(10)
            time.sleep(0.01)

    monkeypatch.setitem(
        kinds.KINDS, "careless", kinds.TaskKind("careless", BlockParams, careless, "test")
    )
    runner: TaskRunner = flask_app.extensions["task_runner"]
    insert_tasks(flask_app, {"kind": "careless", "status": "queued"})
    future = runner.submit(1)
    wait_until(lambda: statuses(flask_app)[1] == "running", "the task runs")
    runner.stop()
    future.result(WAIT)
    assert statuses(flask_app)[1] == "interrupted"


def test_the_runner_stamps_and_refreshes_its_lease(flask_app: Flask, gate: Gate) -> None:
    executor = flask_app.extensions["executor"]
    events = flask_app.extensions["task_events"]
    runner = TaskRunner(flask_app, executor, events, max_running=1, heartbeat_interval=0.05)
    assert runner.runner_id.count(":") >= 2  # host:pid:random
    insert_tasks(flask_app, {"kind": "block", "status": "queued"})
    future = runner.submit(1)
    wait_until(lambda: statuses(flask_app)[1] == "running", "the task runs")
    first = task_row(flask_app, 1)
    assert first["runner_id"] == runner.runner_id
    wait_until(
        lambda: task_row(flask_app, 1)["heartbeat_at"] > first["heartbeat_at"],
        "the heartbeat is refreshed",
    )
    gate.open()
    future.result(WAIT)
    assert task_row(flask_app, 1)["status"] == "succeeded"
    runner.stop()  # ends its timer thread before the test's engine is disposed


def test_a_second_instance_leaves_the_first_ones_live_tasks_alone(
    live_server: ServerFactory, gate: Gate
) -> None:
    first = live_server()
    created = httpx.post(f"{first.url}/api/tasks", json={"kind": "block"})
    assert created.status_code == 201, created.text
    flask_app = first.hybrid.flask_app
    wait_until(lambda: statuses(flask_app) == {1: "running"}, "the task runs")
    second = live_server()  # same database; its start-up runs the recovery
    assert httpx.get(f"{second.url}/api/tasks/1").json()["status"] == "running"
    first_runner = task_runner(first.hybrid.flask_app)
    assert task_row(flask_app, 1)["runner_id"] == first_runner.runner_id
    assert first_runner.runner_id != task_runner(second.hybrid.flask_app).runner_id
    gate.open()
    wait_until(lambda: statuses(flask_app) == {1: "succeeded"}, "the task succeeds")
    assert task_row(flask_app, 1)["error"] is None


def test_only_tasks_with_a_stale_or_missing_heartbeat_are_interrupted_at_start(
    flask_app: Flask, live_server: ServerFactory
) -> None:
    now = utcnow()
    insert_tasks(
        flask_app,
        {"status": "running", "runner_id": "gone:1:dead", "heartbeat_at": now - timedelta(hours=1)},
        {"status": "running", "runner_id": "alive:2:beef", "heartbeat_at": now},
        {"status": "queued", "runner_id": "alive:2:beef", "heartbeat_at": now},
        {"status": "queued"},  # no lease: nobody took it
        {"status": "succeeded"},
    )
    live_server()
    assert statuses(flask_app) == {
        1: "interrupted",
        2: "running",
        3: "queued",
        4: "interrupted",
        5: "succeeded",
    }
    assert task_row(flask_app, 1)["error"] == INTERRUPTED_ERROR


def test_graceful_shutdown_interrupts_tasks_and_closes_websockets_with_1001(
    live_server: ServerFactory, gate: Gate
) -> None:
    server = live_server()  # TASK_THREADS=1: a second task waits queued
    flask_app = server.hybrid.flask_app

    async def watch() -> tuple[int | None, list[dict[str, Any]]]:
        connection = await websocket_connect(f"{server.ws_url}/ws/tasks")
        try:
            hello = json.loads(await connection.read_message())  # type: ignore[arg-type]
            assert hello["type"] == "hello"
            for _ in range(2):
                response = await asyncio.to_thread(
                    httpx.post, f"{server.url}/api/tasks", json={"kind": "block"}
                )
                assert response.status_code == 201
            await asyncio.to_thread(
                wait_until, lambda: statuses(flask_app) == {1: "running", 2: "queued"}, "one runs"
            )
            server.loop.call_soon_threadsafe(server.stop.set)  # as SIGTERM does
            events = []
            while (message := await asyncio.wait_for(connection.read_message(), WAIT)) is not None:
                events.append(json.loads(message)["task"])
            return connection.close_code, events
        finally:
            connection.close()

    close_code, events = asyncio.run(watch())
    assert close_code == 1001
    wait_until(
        lambda: statuses(flask_app) == {1: "interrupted", 2: "interrupted"}, "both interrupted"
    )
    assert not gate.released.is_set()
    # The queued task was recorded interrupted before the sockets closed.
    assert {"id": 2, "status": "interrupted"} in [
        {"id": event["id"], "status": event["status"]} for event in events
    ]


def test_a_thread_that_never_reports_is_named_and_its_task_interrupted(
    live_server: ServerFactory, gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    server = live_server(shutdown_timeout=0.5)
    flask_app = server.hybrid.flask_app
    created = httpx.post(
        f"{server.url}/api/tasks", json={"kind": "block", "params": {"reports": False}}
    )
    assert created.status_code == 201
    wait_until(lambda: statuses(flask_app) == {1: "running"}, "the task runs")
    with caplog.at_level(logging.INFO, logger="hybrid.server"):
        server.loop.call_soon_threadsafe(server.stop.set)
        wait_until(
            lambda: any(r.getMessage() == "stopped" for r in caplog.records), "the server stops"
        )
    assert any(
        r.levelno == logging.ERROR and r.getMessage().startswith("1 worker thread(s) still busy")
        for r in caplog.records
    )
    assert statuses(flask_app) == {1: "interrupted"}
    gate.open()  # let the stuck thread go, so the test's teardown can join it


def test_tasks_finishing_often_do_not_postpone_the_heartbeat(flask_app: Flask, gate: Gate) -> None:
    executor = flask_app.extensions["executor"]
    events = flask_app.extensions["task_events"]
    runner = TaskRunner(flask_app, executor, events, max_running=2, heartbeat_interval=0.3)
    insert_tasks(flask_app, {"kind": "block", "status": "queued"})
    long_one = runner.submit(1)
    wait_until(lambda: statuses(flask_app)[1] == "running", "the long task runs")
    stamped = task_row(flask_app, 1)["heartbeat_at"]
    deadline = time.monotonic() + 3
    refreshed = False
    while not refreshed and time.monotonic() < deadline:
        insert_tasks(flask_app, {"params": {"steps": 1, "delay": 0.0}, "status": "queued"})
        newest = max(statuses(flask_app))
        runner.submit(newest).result(WAIT)  # a task finishes every few milliseconds
        refreshed = task_row(flask_app, 1)["heartbeat_at"] > stamped
    assert refreshed, "the heartbeat was never refreshed"
    gate.open()
    long_one.result(WAIT)
    runner.stop()


# -- one attempt: time limits, duplicates, take-overs and the lease fence (app/tasks/execution.py)


def test_a_task_past_its_time_limit_is_stopped_at_its_next_report_and_failed(
    flask_app: Flask, gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    limited = kinds.TaskKind("block", BlockParams, gate.run, "test only", time_limit=0.2)
    monkeypatch.setitem(kinds.KINDS, "block", limited)
    insert_tasks(flask_app, {"kind": "block", "status": "queued", "max_attempts": 3})
    task_runner(flask_app).submit(1).result(WAIT)
    task = task_row(flask_app, 1)
    assert not gate.released.is_set()  # stopped by report(), not by the gate
    assert (task["status"], task["error"]) == ("failed", "time limit of 0.2 s exceeded")
    assert task["attempts"] == 1  # a time limit is not retried


def test_a_delivery_for_a_task_under_a_live_lease_is_a_duplicate_and_is_dropped(
    flask_app: Flask, gate: Gate
) -> None:
    runner = task_runner(flask_app)
    insert_tasks(flask_app, {"kind": "block", "status": "queued", "max_attempts": 3})
    future = runner.submit(1)
    wait_until(lambda: statuses(flask_app)[1] == "running", "the task runs")
    assert runner.execution.claim(1) == ("skipped", None)  # e.g. a message sent twice
    gate.open()
    future.result(WAIT)
    assert (task_row(flask_app, 1)["status"], task_row(flask_app, 1)["attempts"]) == (
        "succeeded",
        1,
    )
    assert runner.execution.claim(1) == ("skipped", None)  # and once it is final


def test_a_running_task_whose_lease_went_stale_is_taken_over_or_failed_when_out_of_attempts(
    flask_app: Flask,
) -> None:
    stale = utcnow() - timedelta(hours=1)
    dead = {"status": "running", "runner_id": "gone:1:dead", "heartbeat_at": stale}
    insert_tasks(
        flask_app,
        {**dead, "attempts": 1, "max_attempts": 3},
        {**dead, "attempts": 3, "max_attempts": 3},
    )
    execution = task_runner(flask_app).execution
    verdict, taken = execution.claim(1)
    assert verdict == "run" and taken is not None
    assert taken["attempts"] == 2 and task_row(flask_app, 1)["runner_id"] == execution.runner_id
    verdict, spent = execution.claim(2)
    assert verdict == "failed" and spent is not None
    assert spent["status"] == "failed" and "attempt 3 of 3" in spent["error"]
    assert "stopped responding" in spent["error"]


def test_an_attempt_that_lost_its_lease_cannot_overwrite_the_task(
    flask_app: Flask, gate: Gate
) -> None:
    runner = task_runner(flask_app)
    insert_tasks(flask_app, {"kind": "block", "status": "queued", "max_attempts": 3})
    future = runner.submit(1)
    wait_until(lambda: task_row(flask_app, 1)["progress"] == 50, "the task reports")

    def taken_over(session: Session) -> None:  # what another worker's take-over writes
        task = session.get_one(Task, 1)
        task.runner_id, task.attempts, task.progress = "other:2:alive", 2, 7

    call_in_session(flask_app, taken_over)
    future.result(WAIT)  # its next report() finds the lease gone and gives up
    assert not gate.released.is_set()
    task = task_row(flask_app, 1)
    assert (task["status"], task["runner_id"], task["attempts"], task["progress"]) == (
        "running",
        "other:2:alive",
        2,
        7,
    )


def test_a_lease_is_judged_by_its_owners_interval_not_the_readers(
    flask_app: Flask, gate: Gate
) -> None:
    """A process configured with a shorter ``TASK_HEARTBEAT_INTERVAL`` (a rolling change)
    must not take a live task of a process with a longer one for dead."""
    runner = task_runner(flask_app)  # interval 10 s: its leases last 30 s
    insert_tasks(flask_app, {"kind": "block", "status": "queued", "max_attempts": 3})
    future = runner.submit(1)
    wait_until(lambda: statuses(flask_app)[1] == "running", "the task runs")
    impatient = Execution(
        flask_app,
        flask_app.extensions["task_events"],
        runner,
        runner_id="impatient:1:reader",
        stopping=threading.Event(),
        stale_after=0.0,  # it would take any heartbeat for stale
    )
    assert impatient.claim(1) == ("skipped", None)
    assert recover_interrupted(flask_app, stale_after=0.0) == 0
    gate.open()
    future.result(WAIT)
    assert (task_row(flask_app, 1)["status"], task_row(flask_app, 1)["attempts"]) == (
        "succeeded",
        1,
    )
