"""The queue backend end to end: ``manage.py serve`` and ``manage.py worker`` processes,
one database, a private ``redis-server`` (``TASK_BACKEND=queue``).

What is killed here is killed for real (SIGKILL, SIGTERM, Redis stopped and started
empty), and the tests read the outcome from the database and a WebSocket:

* a task enqueued over HTTP, on either side, runs on a worker process;
* a web process killed mid-task loses nothing: the worker finishes it, and a new web
  process's WebSocket clients see its progress (Redis pub/sub);
* a worker killed mid-task has its task run again by another (``attempts`` 2), or,
  its attempts spent, recorded ``failed`` with the reason -- never left ``running``;
* one ``Idempotency-Key`` gives one task, run once;
* with Redis down an enqueue is a 503 and stores nothing; tasks queued before the
  outage all run once Redis is back, empty, and a worker starts;
* a worker's life cycle: SIGTERM hands its task back, ``--processes 2``, the start-up
  errors;
* Dramatiq's hard time limit stops a kind that never reports; ``report()`` stops one
  that does, at the kind's limit.

The test-only kinds come from a ``sitecustomize`` on ``PYTHONPATH`` of every process
(the web process validates the kind, the worker runs it). A *gated* kind reports
progress until a file (its gate) exists, so a test decides when it finishes without
timing anything; each start of an attempt appends the worker's pid to a file.
``TASK_HEARTBEAT_INTERVAL=0.5`` makes a dead worker's lease stale after 1.5 s; every
wait is :func:`wsgi_bridge.testing.wait_for` with a generous timeout.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from tornado.websocket import websocket_connect

from config import PROJECT_ROOT
from tests.support.cli import ServerProcess, environment, run, sitecustomize_dir
from tests.support.redis import RedisServer, free_port
from tests.support.server import close_websocket
from wsgi_bridge.testing import wait_for

HEARTBEAT = "0.5"
"""``TASK_HEARTBEAT_INTERVAL`` of every process: a lease is stale after 1.5 s."""

TIMEOUT = 60.0
"""Seconds any wait here may take before the test fails (generous: CI machines are slow)."""

SITECUSTOMIZE = f"""
import os
import sys
import time

from pydantic import BaseModel, ConfigDict

sys.path.insert(0, {str(PROJECT_ROOT)!r})  # as running manage.py does, a moment later

from app.extensions import db
from app.tasks import kinds


class GateParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    gate: str
    runs: str


def run_gated(params, report):
    with open(params.runs, "a") as runs:
        runs.write(f"{{os.getpid()}}\\n")
    step = 0
    while not os.path.exists(params.gate):
        step = min(step + 1, 99)
        report(step)
        time.sleep(0.1)
    report(100)
    return {{"opened": True}}


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def run_silent(params, report):
    for _ in range(1200):  # a minute of work that never calls report()
        time.sleep(0.05)
    return {{"finished": True}}


def run_reporting(params, report):
    for _ in range(1200):
        report(0)
        time.sleep(0.05)
    return {{"finished": True}}


def add(name, params, function, **options):
    kinds.KINDS[name] = kinds.TaskKind(name, params, function, "test only", **options)


add("gated", GateParams, run_gated, retry_backoff=0.1)
add("gated_twice", GateParams, run_gated, max_attempts=2, retry_backoff=0.1)
add("silent", NoParams, run_silent, time_limit=1, max_attempts=1)
add("reporting", NoParams, run_reporting, time_limit=1, max_attempts=1)
"""

WORKER_STARTED = re.compile(r"worker started: .* \(pid (\d+)\)")
"""The line a worker process logs once it consumes; group 1 is its pid."""

CHILD_STARTED = re.compile(r"started process \d+ \(pid (\d+)\)")
"""The line ``--processes N``'s supervisor logs per child; group 1 is the child's pid."""


class Gate:
    """A gated task's two files: the gate (its existence lets the task finish) and the
    list of the pids that started an attempt.

    :param directory: where both live.
    """

    def __init__(self, directory: Path) -> None:
        self.gate = directory / "gate"
        self.runs = directory / "runs"

    @property
    def params(self) -> dict[str, str]:
        """The task's ``params``."""
        return {"gate": str(self.gate), "runs": str(self.runs)}

    def open(self) -> None:
        """Let the task finish."""
        self.gate.touch()

    def starts(self) -> list[int]:
        """The pids of the workers that started an attempt, in order."""
        if not self.runs.exists():
            return []
        return [int(line) for line in self.runs.read_text().split()]


class Stack:
    """The processes of one test: a Redis, a database, web and worker processes.

    :param database_url: the migrated database.
    :param redis: the private Redis.
    :param site: the directory of the test kinds' ``sitecustomize``.
    :param started: the ``servers`` fixture's list (every process is killed after the test).
    """

    def __init__(
        self, database_url: str, redis: RedisServer, site: Path, started: list[ServerProcess]
    ) -> None:
        self.database_url = database_url
        self.redis = redis
        self.site = site
        self.started = started

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of every process: the queue backend on this test's Redis."""
        settings = {
            "TASK_BACKEND": "queue",
            "REDIS_URL": self.redis.url,
            "TASK_HEARTBEAT_INTERVAL": HEARTBEAT,
            "SHUTDOWN_TIMEOUT": "5",
            "THREADS": "4",
        }
        settings.update(extra)
        return environment(self.database_url, site=self.site, **settings)

    def web(self) -> str:
        """Start ``manage.py serve``; return its base URL once it serves."""
        server = ServerProcess("--no-reload", env=self.env(PORT="0"))
        self.started.append(server)
        self.last_web = server
        return f"http://127.0.0.1:{server.port()}"

    def worker(self, *args: str) -> ServerProcess:
        """Start ``manage.py worker --threads 2 *args``; return it once it consumes."""
        worker = ServerProcess("--threads", "2", *args, env=self.env(), command="worker")
        self.started.append(worker)
        worker.wait_for_line(WORKER_STARTED, timeout=TIMEOUT)
        return worker

    def row(self, task_id: int) -> dict[str, Any]:
        """Task ``task_id``'s columns, read straight from the database."""
        return rows(self.database_url, "WHERE id = :id", id=task_id)[0]

    def wait(self, task_id: int, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """Wait until task ``task_id``'s row satisfies ``predicate``; return it."""
        assert wait_for(lambda: predicate(self.row(task_id)), TIMEOUT, step=0.1), (
            f"task {task_id} is still {self.row(task_id)}; logs:\n{self.logs()}"
        )
        return self.row(task_id)

    def logs(self) -> str:
        """Every process's stderr, for a failing assertion's message."""
        return "\n".join(
            f"--- {' '.join(map(str, p.process.args))}\n{p.log}"  # type: ignore[arg-type]
            for p in self.started
        )


def rows(database_url: str, where: str = "", **params: Any) -> list[dict[str, Any]]:
    """Tasks' columns as dicts, read straight from the database (``where`` filters)."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            found = connection.execute(text(f"SELECT * FROM tasks {where} ORDER BY id"), params)
            return [dict(row._mapping) for row in found]
    finally:
        engine.dispose()


def runner_pid(row: dict[str, Any]) -> int:
    """The pid in a running task's lease (``host:pid:hex``)."""
    return int(str(row["runner_id"]).split(":")[-2])


def enqueue(base: str, kind: str, params: dict[str, Any], path: str = "/api/tasks") -> int:
    """``POST path`` (Flask's ``/api/tasks`` or the native ``/api/v2/tasks``); return the
    new task's id."""
    created = httpx.post(f"{base}{path}", json={"kind": kind, "params": params}, timeout=30)
    assert created.status_code == 201, created.text
    task_id: int = created.json()["id"]
    return task_id


def running(attempt: int) -> Callable[[dict[str, Any]], bool]:
    """A predicate: the task is running its attempt ``attempt``."""
    return lambda row: row["status"] == "running" and row["attempts"] == attempt


def final(row: dict[str, Any]) -> bool:
    """Whether the task is in a final status."""
    return row["status"] not in ("queued", "running")


@pytest.fixture
def stack(
    migrated: str, redis_server: RedisServer, tmp_path: Path, servers: list[ServerProcess]
) -> Stack:
    """This test's processes (none started yet)."""
    return Stack(migrated, redis_server, sitecustomize_dir(tmp_path, SITECUSTOMIZE), servers)


@pytest.fixture
def gate(tmp_path: Path) -> Gate:
    """The files of one gated task."""
    return Gate(tmp_path)


@pytest.mark.parametrize("path", ["/api/tasks", "/api/v2/tasks"], ids=["flask", "native"])
def test_a_task_enqueued_over_http_runs_on_a_worker_process(
    stack: Stack, gate: Gate, path: str
) -> None:
    base = stack.web()
    gate.open()
    task_id = enqueue(base, "gated", gate.params, path)
    assert stack.row(task_id)["status"] == "queued"  # nothing runs tasks in the web process
    worker = stack.worker()
    done = stack.wait(task_id, final)
    assert (done["status"], done["attempts"], done["progress"]) == ("succeeded", 1, 100)
    assert gate.starts() == [worker.process.pid]
    shown = httpx.get(f"{base}/api/tasks/{task_id}").json()
    assert (shown["status"], shown["result"]) == ("succeeded", {"opened": True})


async def progress_after_first_event(url: str, on_first: Callable[[], None]) -> list[Any]:
    """Open the WebSocket at ``url``; once one task event arrived (the relay works), call
    ``on_first`` (in a thread); return the task of every event until one is final."""
    connection = await websocket_connect(url)
    try:
        hello = await connection.read_message()
        assert hello is not None and json.loads(hello)["type"] == "hello"
        events: list[dict[str, Any]] = []
        while not events or events[-1]["status"] in ("queued", "running"):
            message = await asyncio.wait_for(connection.read_message(), TIMEOUT)
            assert message is not None, "the server closed the WebSocket"
            events.append(json.loads(message)["task"])
            if len(events) == 1:
                await asyncio.to_thread(on_first)
        return events
    finally:
        await close_websocket(connection)


@pytest.mark.parametrize("path", ["/api/tasks", "/api/v2/tasks"], ids=["flask", "native"])
def test_the_list_s_socket_sees_a_new_task_queued_then_its_progress(
    stack: Stack, gate: Gate, path: str
) -> None:
    """The task list subscribes with no filter: a task enqueued on the web process is
    published ``queued`` through Redis (its first event, with its name), then the
    worker's events follow on the same socket."""
    base = stack.web()
    gate.open()

    async def watch() -> list[dict[str, Any]]:
        connection = await websocket_connect(f"{base.replace('http', 'ws', 1)}/ws/tasks")
        try:
            hello = await connection.read_message()
            assert hello is not None and json.loads(hello)["type"] == "hello"
            new = {"kind": "gated", "params": gate.params, "name": "listed"}
            created = await asyncio.to_thread(httpx.post, f"{base}{path}", json=new, timeout=30)
            assert created.status_code == 201, created.text
            events: list[dict[str, Any]] = []
            while not events or events[-1]["status"] in ("queued", "running"):
                message = await asyncio.wait_for(connection.read_message(), TIMEOUT)
                assert message is not None, "the server closed the WebSocket"
                events.append(json.loads(message)["task"])
                if len(events) == 1:
                    await asyncio.to_thread(stack.worker)
            return events
        finally:
            await close_websocket(connection)

    events = asyncio.run(watch())
    first = events[0]
    assert (first["status"], first["name"], first["attempts"]) == ("queued", "listed", 0)
    assert [e["status"] for e in events[1:]][:1] == ["running"]
    assert events[-1]["status"] == "succeeded"
    assert {e["id"] for e in events} == {first["id"]}


def test_a_web_process_killed_mid_task_loses_nothing_and_a_new_one_streams_its_progress(
    stack: Stack, gate: Gate
) -> None:
    base = stack.web()
    stack.worker()
    task_id = enqueue(base, "gated", gate.params)
    stack.wait(task_id, running(1))
    first_web = stack.last_web
    first_web.process.send_signal(signal.SIGKILL)
    first_web.process.wait(TIMEOUT)

    new_base = stack.web()
    ws_url = new_base.replace("http://", "ws://") + f"/ws/tasks?task={task_id}"
    events = asyncio.run(progress_after_first_event(ws_url, gate.open))
    assert events[0]["status"] == "running"  # progress from the worker, relayed by Redis
    assert events[-1]["status"] == "succeeded"
    assert {e["id"] for e in events} == {task_id}
    assert [e["progress"] for e in events][-2:] == [100, 100]
    done = stack.row(task_id)
    assert (done["status"], done["attempts"]) == ("succeeded", 1)
    assert len(gate.starts()) == 1


def test_a_worker_killed_mid_task_has_it_retried_by_another_worker(
    stack: Stack, gate: Gate
) -> None:
    base = stack.web()
    workers = {w.process.pid: w for w in (stack.worker(), stack.worker())}
    task_id = enqueue(base, "gated", gate.params)
    victim = runner_pid(stack.wait(task_id, running(1)))
    workers[victim].process.send_signal(signal.SIGKILL)
    workers[victim].process.wait(TIMEOUT)

    survivor = runner_pid(stack.wait(task_id, running(2)))
    assert survivor != victim and survivor in workers
    row = stack.row(task_id)
    gate.open()
    done = stack.wait(task_id, final)
    assert (done["status"], done["attempts"], done["error"]) == ("succeeded", 2, None)
    assert gate.starts() == [victim, survivor]
    assert "stopped responding during attempt 1 of 3" in str(row["error"]), row


def test_a_task_whose_workers_die_on_every_attempt_is_recorded_failed(
    stack: Stack, gate: Gate
) -> None:
    base = stack.web()
    workers = {w.process.pid: w for w in (stack.worker(), stack.worker())}
    task_id = enqueue(base, "gated_twice", gate.params)
    for attempt in (1, 2):
        victim = runner_pid(stack.wait(task_id, running(attempt)))
        workers[victim].process.send_signal(signal.SIGKILL)
        workers[victim].process.wait(TIMEOUT)
    stack.worker()  # both are dead: a new one finds the task's lease stale
    done = stack.wait(task_id, final)
    assert done["status"] == "failed"
    assert "stopped responding during attempt 2 of 2" in done["error"]
    assert "no attempts left" in done["error"]
    assert done["attempts"] == 2
    assert len(gate.starts()) == 2


def test_one_idempotency_key_gives_one_task_run_once(stack: Stack, gate: Gate) -> None:
    """Two ``POST`` s at once with one ``Idempotency-Key``, one to each side (a client
    retrying while its first request is still under way), then a third: one row, run once."""
    base = stack.web()
    barrier = threading.Barrier(2)
    answers: list[httpx.Response] = []

    def post(path: str) -> None:
        barrier.wait(TIMEOUT)
        answers.append(
            httpx.post(
                f"{base}{path}",
                json={"kind": "gated", "params": gate.params},
                headers={"Idempotency-Key": "order-42"},
                timeout=30,
            )
        )

    threads = [threading.Thread(target=post, args=(p,)) for p in ("/api/tasks", "/api/v2/tasks")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert sorted(a.status_code for a in answers) == [200, 201], [a.text for a in answers]
    task_id = answers[0].json()["id"]
    assert answers[1].json()["id"] == task_id
    replay = httpx.post(
        f"{base}/api/tasks",
        json={"kind": "gated", "params": gate.params},
        headers={"Idempotency-Key": "order-42"},
        timeout=30,
    )
    assert (replay.status_code, replay.json()["id"]) == (200, task_id)
    assert replay.headers["Idempotent-Replayed"] == "true"

    gate.open()
    worker = stack.worker()
    done = stack.wait(task_id, final)
    assert (done["status"], done["attempts"]) == ("succeeded", 1)
    assert [r["id"] for r in rows(stack.database_url)] == [task_id]
    # A duplicate message would be dropped by the claim; the stop lets the worker
    # finish what it had received before the count.
    status, _ = worker.stop(TIMEOUT)
    assert status == 0
    assert gate.starts() == [worker.process.pid]


def test_with_redis_down_an_enqueue_is_a_503_and_tasks_queued_before_run_after(
    stack: Stack, tmp_path: Path
) -> None:
    base = stack.web()
    gates = [Gate(tmp_path / f"task{i}") for i in range(3)]
    for task_gate in gates:
        task_gate.gate.parent.mkdir()
        task_gate.open()
    accepted = [enqueue(base, "gated", g.params) for g in gates]

    stack.redis.stop()
    refused = httpx.post(
        f"{base}/api/tasks", json={"kind": "gated", "params": gates[0].params}, timeout=30
    )
    assert refused.status_code == 503, refused.text
    assert "Redis" in refused.json()["error"]
    assert "nothing was queued" in refused.json()["error"]
    assert [r["id"] for r in rows(stack.database_url)] == accepted

    stack.redis.start()  # on the same port, empty: the three messages are gone
    stack.worker()
    for task_id in accepted:
        assert stack.wait(task_id, final)["status"] == "succeeded"
    assert all(len(g.starts()) == 1 for g in gates)
    assert [r["id"] for r in rows(stack.database_url)] == accepted


def test_sigterm_hands_the_task_under_way_back_and_a_new_worker_finishes_it(
    stack: Stack, gate: Gate
) -> None:
    base = stack.web()
    first = stack.worker()
    task_id = enqueue(base, "gated", gate.params)
    stack.wait(task_id, running(1))
    status, _ = first.stop(TIMEOUT)
    assert status == 0, first.log
    assert "worker stopped" in first.log
    row = stack.row(task_id)
    assert (row["status"], row["attempts"], row["runner_id"]) == ("queued", 0, None)

    second = stack.worker()
    stack.wait(task_id, running(1))
    gate.open()
    done = stack.wait(task_id, final)
    assert (done["status"], done["attempts"]) == ("succeeded", 1)
    assert gate.starts() == [first.process.pid, second.process.pid]


def test_two_worker_processes_start_and_stop_on_sigterm(stack: Stack) -> None:
    supervisor = ServerProcess(
        "--processes", "2", "--threads", "1", env=stack.env(), command="worker"
    )
    stack.started.append(supervisor)
    children = {int(supervisor.wait_for_line(CHILD_STARTED, n, TIMEOUT)) for n in (1, 2)}
    consuming = {int(supervisor.wait_for_line(WORKER_STARTED, n, TIMEOUT)) for n in (1, 2)}
    assert len(children) == 2 and consuming == children
    status, _ = supervisor.stop(TIMEOUT)
    assert status == 0, supervisor.log
    assert supervisor.log.count("worker stopped") == 2


@pytest.mark.parametrize(
    ("extra", "args", "expected"),
    [
        ({"TASK_BACKEND": "inprocess"}, (), "no feature has a background worker to run"),
        (
            {"REDIS_URL": "redis://127.0.0.1:{free}/0"},
            (),
            "Redis at redis://127.0.0.1:{free}/0 does not answer",
        ),
        ({}, ("--queues", "nope"), "--queues: no task kind uses nope"),
    ],
    ids=["inprocess", "redis-down", "unknown-queue"],
)
def test_a_worker_that_cannot_run_exits_1_with_one_error_line(
    stack: Stack, extra: dict[str, str], args: tuple[str, ...], expected: str
) -> None:
    free = str(free_port())
    env = stack.env(**{name: value.format(free=free) for name, value in extra.items()})
    result = run("worker", *args, env=env, timeout=TIMEOUT)
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert expected.format(free=free) in errors[0]


@pytest.mark.parametrize(
    ("kind", "how"),
    [("silent", "interrupted by the worker"), ("reporting", "time limit of 1 s exceeded")],
)
def test_an_attempt_past_its_time_limit_is_stopped_and_recorded_failed(
    stack: Stack, kind: str, how: str
) -> None:
    """``silent`` never calls ``report()``: Dramatiq's hard limit (the kind's 1 s plus
    the grace) interrupts it; ``reporting`` is stopped by ``report()`` at 1 s."""
    base = stack.web()
    worker = stack.worker()
    task_id = enqueue(base, kind, {})
    done = stack.wait(task_id, final)
    assert (done["status"], done["error"]) == ("failed", "time limit of 1 s exceeded")
    assert done["attempts"] == 1
    assert how in worker.log
