"""The task API over HTTP on both sides and both backends: enqueue, idempotency, cancel, retry.

Flask's ``/api/tasks`` and the native ``/api/v2/tasks`` are exercised over real
sockets (``live_server``), each with the in-process backend and with the
queue backend (Dramatiq on a private ``redis-server``, :mod:`tests.support.redis`).
No worker runs for the queue backend: what is checked there is the API --
what an enqueue, a cancel or a retry answers and stores -- and the 503 (with
``Retry-After``, nothing written) when Redis is stopped. The life of a task
(running cancelled, failed then retried, retried with back-off) is checked
with the in-process backend, which runs tasks itself.

Test kinds (``block``, ``flaky``, ``explode``) are registered in
:data:`app.tasks.kinds.KINDS` for one test (as ``test_lifecycle.py`` does),
before the server is built, so the queue backend has their actors too.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import webtest
from flask import Flask
from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.database import call_in_session
from app.schema_migrations import upgrade_database
from app.tasks import kinds
from app.tasks.client import MAX_PARAMS_BYTES
from app.tasks.execution import INTERRUPTED_ERROR
from app.tasks.models import Task
from config import Settings
from server.build import build_hybrid
from tests.support.parity import COMPARED_HEADERS, assert_parity
from tests.support.redis import RedisServer
from tests.support.server import LiveServer, ServerFactory, raw_exchange
from wsgi_bridge.testing import wait_for

WAIT = 15.0
"""Seconds to wait for a task to reach a state (generous: CI machines are slow)."""

REQUEST_TIMEOUT = 30.0
"""Seconds an HTTP request of these tests may take before it counts as hung."""

SIDES = {"flask": "/api/tasks", "native": "/api/v2/tasks"}
"""Where each side serves the task API."""


@dataclass
class Backend:
    """The backend a test runs with: ``name`` and, for ``queue``, its Redis."""

    name: str
    redis: RedisServer | None = None


def use_queue(monkeypatch: pytest.MonkeyPatch, server: RedisServer) -> None:
    """Make apps built from now on use the queue backend on ``server``."""
    monkeypatch.setenv("TASK_BACKEND", "queue")
    monkeypatch.setenv("REDIS_URL", server.url)


@pytest.fixture(params=["inprocess", "queue"])
def backend(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Backend]:
    """Each backend in turn: ``inprocess`` (the default) and ``queue`` on a private Redis."""
    if request.param == "inprocess":
        yield Backend("inprocess")
        return
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    use_queue(monkeypatch, server)
    try:
        yield Backend("queue", server)
    finally:
        server.stop()


@pytest.fixture(params=sorted(SIDES))
def side(request: pytest.FixtureRequest) -> str:
    """The base path of each side's task API in turn."""
    return SIDES[request.param]


# -- test kinds ------------------------------------------------------------------------------


class NoParams(BaseModel):
    """The params of the test kinds: none."""

    model_config = ConfigDict(extra="forbid")


class Gate:
    """The ``block`` kind: runs, reporting, until the test opens the gate."""

    def __init__(self) -> None:
        self.released = threading.Event()

    def run(self, params: NoParams, report: kinds.Report) -> dict[str, Any]:
        while not self.released.wait(0.01):
            report(50)
        return {"released": True}

    def open(self) -> None:
        """Let every ``block`` task finish."""
        self.released.set()


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    """Register ``block`` (one attempt); the gate opens after the test whatever happens."""
    gate = Gate()
    monkeypatch.setitem(
        kinds.KINDS,
        "block",
        kinds.TaskKind("block", NoParams, gate.run, "test only", max_attempts=1),
    )
    yield gate
    gate.open()


def register(
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    run: Callable[[NoParams, kinds.Report], dict[str, Any]],
    **options: Any,
) -> None:
    """Register the test kind ``name`` for this test."""
    monkeypatch.setitem(
        kinds.KINDS, name, kinds.TaskKind(name, NoParams, run, "test only", **options)
    )


# -- helpers ---------------------------------------------------------------------------------


def client(server: LiveServer) -> httpx.Client:
    """An HTTP client of ``server`` that fails a request hanging past :data:`REQUEST_TIMEOUT`."""
    return httpx.Client(base_url=server.url, timeout=REQUEST_TIMEOUT)


def row_count(flask_app: Flask) -> int:
    """How many tasks the database holds."""
    return call_in_session(
        flask_app, lambda session: session.scalar(select(func.count()).select_from(Task)) or 0
    )


def task_row(flask_app: Flask, task_id: int) -> dict[str, Any]:
    """Task ``task_id`` as stored."""

    def read(session: Session) -> dict[str, Any]:
        return session.get_one(Task, task_id).to_dict()

    return call_in_session(flask_app, read)


def wait_status(flask_app: Flask, task_id: int, status: str) -> dict[str, Any]:
    """Wait until task ``task_id`` is ``status``; return it."""
    assert wait_for(lambda: task_row(flask_app, task_id)["status"] == status, WAIT, step=0.02), (
        f"task {task_id} is {task_row(flask_app, task_id)['status']}, not {status}"
    )
    return task_row(flask_app, task_id)


def queued_task(http: httpx.Client, side: str, flask_app: Flask, backend: Backend) -> int:
    """Enqueue a ``block`` task that stays ``queued``; return its id.

    With the queue backend no worker runs, so any task stays queued. In
    process, the runner runs one task at a time in these tests (``THREADS=4``:
    ``TASK_THREADS`` is 1), so a first ``block`` task, held by the gate,
    keeps the next one queued.
    """
    if backend.name == "inprocess":
        blocker = http.post(side, json={"kind": "block"}).json()["id"]
        wait_status(flask_app, blocker, "running")
    return int(http.post(side, json={"kind": "block"}).json()["id"])


# -- enqueue and idempotency -----------------------------------------------------------------


def test_enqueue_gives_201_and_a_key_gives_one_task(
    live_server: ServerFactory, backend: Backend, side: str, gate: Gate
) -> None:
    server = live_server()
    flask_app = server.hybrid.flask_app
    with client(server) as http:
        plain = http.post(side, json={"kind": "block"})
        assert plain.status_code == 201
        assert plain.headers["location"] == f"/api/tasks/{plain.json()['id']}"
        assert "idempotent-replayed" not in plain.headers

        headers = {"Idempotency-Key": "order-7"}
        first = http.post(side, json={"kind": "block"}, headers=headers)
        assert first.status_code == 201
        assert first.json()["idempotency_key"] == "order-7"
        again = http.post(side, json={"kind": "block"}, headers=headers)
        assert again.status_code == 200
        assert again.headers["idempotent-replayed"] == "true"
        assert again.headers["location"] == first.headers["location"]
        assert again.json()["id"] == first.json()["id"]
        # The draft's own form, a Structured Field String, names the same key.
        quoted = http.post(side, json={"kind": "block"}, headers={"Idempotency-Key": '"order-7"'})
        assert (quoted.status_code, quoted.json()["id"]) == (200, first.json()["id"])
        assert row_count(flask_app) == 2

        other = http.post(side, json={"kind": "sleep", "params": {"steps": 1}}, headers=headers)
        assert other.status_code == 409
        assert "order-7" in other.json()["error"]
        assert row_count(flask_app) == 2


def test_both_sides_share_one_key_space(live_server: ServerFactory, gate: Gate) -> None:
    """A key used on Flask's API replays on the native one, and the other way round."""
    server = live_server()
    with client(server) as http:
        flask = http.post("/api/tasks", json={"kind": "block"}, headers={"Idempotency-Key": "k1"})
        native = http.post(
            "/api/v2/tasks", json={"kind": "block"}, headers={"Idempotency-Key": "k1"}
        )
    assert (flask.status_code, native.status_code) == (201, 200)
    assert flask.json()["id"] == native.json()["id"]
    assert row_count(server.hybrid.flask_app) == 1


def test_a_repeated_key_header_is_refused_alike_on_both_sides(
    live_server: ServerFactory, gate: Gate
) -> None:
    """Two ``Idempotency-Key`` fields are one 400 on both sides, and no task.

    Flask joins repeated fields with ``", "`` and Tornado with ``","``, so
    taking the joined value made the same request two different keys (two tasks).
    """
    server = live_server()
    repeated = [("Idempotency-Key", "k-a"), ("Idempotency-Key", "k-b")]
    with client(server) as http:
        flask = http.post("/api/tasks", json={"kind": "block"}, headers=repeated)
        native = http.post("/api/v2/tasks", json={"kind": "block"}, headers=repeated)
    assert (flask.status_code, native.status_code) == (400, 400)
    assert flask.json() == native.json()
    assert "Idempotency-Key" in flask.json()["error"]
    assert row_count(server.hybrid.flask_app) == 0


# -- bad input -------------------------------------------------------------------------------


def test_bad_input_is_a_clear_4xx_and_writes_nothing(
    live_server: ServerFactory, backend: Backend, side: str
) -> None:
    server = live_server(max_body_size=512 * 1024)
    flask_app = server.hybrid.flask_app
    with client(server) as http:
        unknown = http.post(side, json={"kind": "mine"})
        assert unknown.status_code == 422
        assert "kind" in unknown.json()["fields"]

        big = {"kind": "sleep", "params": {"pad": "x" * (MAX_PARAMS_BYTES + 1)}}
        too_large = http.post(side, json=big)
        assert too_large.status_code == 413
        assert str(MAX_PARAMS_BYTES) in too_large.json()["error"]

        long_key = http.post(side, json={"kind": "sleep"}, headers={"Idempotency-Key": "k" * 256})
        assert long_key.status_code == 422
        assert "idempotency_key" in long_key.json()["fields"]
        bad_quote = http.post(side, json={"kind": "sleep"}, headers={"Idempotency-Key": '"open'})
        assert bad_quote.status_code == 422
        assert "idempotency_key" in bad_quote.json()["fields"]

        deep = b'{"kind": "sleep", "params": {"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
        nested = http.post(side, content=deep, headers={"Content-Type": "application/json"})
        assert nested.status_code == 400
        somewhat = b'{"kind": "sleep", "params": {"x": ' + b"[" * 500 + b"]" * 500 + b"}}"
        nested = http.post(side, content=somewhat, headers={"Content-Type": "application/json"})
        assert nested.status_code == 422
    # Over MAX_BODY_SIZE: refused on the headers alone (the body is not sent: a
    # server closing on an unread body would reset the connection, losing its answer).
    head = f"POST {side} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    head += f"Content-Length: {600 * 1024}\r\n\r\n"
    status_line = raw_exchange(server, head.encode()).split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 4"), status_line
    assert row_count(flask_app) == 0


# -- cancel and retry ------------------------------------------------------------------------


def test_cancel_and_retry_follow_the_task_state(
    live_server: ServerFactory, backend: Backend, side: str, gate: Gate
) -> None:
    server = live_server()
    flask_app = server.hybrid.flask_app
    with client(server) as http:
        task_id = queued_task(http, side, flask_app, backend)
        assert task_row(flask_app, task_id)["status"] == "queued"

        retry_queued = http.post(f"{side}/{task_id}/retry")
        assert retry_queued.status_code == 409
        assert "queued" in retry_queued.json()["error"]

        cancelled = http.post(f"{side}/{task_id}/cancel")
        assert cancelled.status_code == 200
        assert (cancelled.json()["status"], cancelled.json()["id"]) == ("cancelled", task_id)
        assert task_row(flask_app, task_id)["status"] == "cancelled"
        twice = http.post(f"{side}/{task_id}/cancel")
        assert twice.status_code == 409
        assert "cancelled" in twice.json()["error"]

        retried = http.post(f"{side}/{task_id}/retry")
        assert retried.status_code == 200
        assert retried.json()["status"] == "queued"
        assert retried.json()["error"] is None
        assert http.post(f"{side}/{task_id}/retry").status_code == 409

        for action in ("cancel", "retry"):
            missing = http.post(f"{side}/999/{action}")
            assert (missing.status_code, missing.json()) == (404, {"error": "no such task"})

        if backend.name == "inprocess":  # a task that finished: nothing to cancel
            gate.open()
            wait_status(flask_app, task_id, "succeeded")
            done = http.post(f"{side}/{task_id}/cancel")
            assert done.status_code == 409
            assert "succeeded" in done.json()["error"]


def test_a_running_task_is_cancelled(live_server: ServerFactory, side: str, gate: Gate) -> None:
    server = live_server()
    flask_app = server.hybrid.flask_app
    with client(server) as http:
        task_id = http.post(side, json={"kind": "block"}).json()["id"]
        wait_status(flask_app, task_id, "running")
        asked = http.post(f"{side}/{task_id}/cancel")
        assert asked.status_code == 200
        assert asked.json()["cancel_requested"] is True
        task = wait_status(flask_app, task_id, "cancelled")
        assert task["finished_at"] is not None
        assert http.get(f"/api/tasks/{task_id}").json()["status"] == "cancelled"


def test_a_failed_task_retried_runs_again_and_succeeds(
    live_server: ServerFactory, side: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def flaky(params: NoParams, report: kinds.Report) -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first time fails")
        report(100)
        return {"call": len(calls)}

    register(monkeypatch, "flaky", flaky, max_attempts=1)
    server = live_server()
    flask_app = server.hybrid.flask_app
    with client(server) as http:
        task_id = http.post(side, json={"kind": "flaky"}).json()["id"]
        failed = wait_status(flask_app, task_id, "failed")
        assert failed["error"] == "RuntimeError: first time fails"
        retried = http.post(f"{side}/{task_id}/retry")
        assert retried.status_code == 200
        done = wait_status(flask_app, task_id, "succeeded")
    assert (done["result"], done["error"], done["attempts"]) == ({"call": 2}, None, 1)


def mark_interrupted(flask_app: Flask, task_id: int) -> None:
    """Record task ``task_id`` as a server stopping mid-run does (``interrupted`` at 40 %)."""

    def mark(session: Session) -> None:
        task = session.get_one(Task, task_id)
        task.status, task.progress, task.error = "interrupted", 40, INTERRUPTED_ERROR

    call_in_session(flask_app, mark)


def test_an_interrupted_task_retried_runs_again_and_succeeds(
    live_server: ServerFactory, side: str
) -> None:
    server = live_server()
    flask_app = server.hybrid.flask_app
    with client(server) as http:
        created = http.post(side, json={"kind": "sleep", "params": {"steps": 2, "delay": 0}})
        task_id = created.json()["id"]
        wait_status(flask_app, task_id, "succeeded")
        mark_interrupted(flask_app, task_id)
        retried = http.post(f"{side}/{task_id}/retry")
        assert retried.status_code == 200
        assert (retried.json()["status"], retried.json()["error"]) == ("queued", None)
        done = wait_status(flask_app, task_id, "succeeded")
    assert (done["progress"], done["error"], done["attempts"]) == (100, None, 1)


def test_a_raising_kind_is_retried_up_to_max_attempts_then_failed(
    live_server: ServerFactory, side: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def explode(params: NoParams, report: kinds.Report) -> dict[str, Any]:
        calls.append(1)
        raise RuntimeError(f"boom {len(calls)}")

    register(monkeypatch, "explode", explode, max_attempts=3, retry_backoff=0.05)
    server = live_server()
    flask_app = server.hybrid.flask_app
    with client(server) as http:
        created = http.post(side, json={"kind": "explode"}).json()
    assert created["max_attempts"] == 3
    task = wait_status(flask_app, created["id"], "failed")
    assert (task["attempts"], task["error"], len(calls)) == (3, "RuntimeError: boom 3", 3)


# -- the queue backend with Redis stopped ----------------------------------------------------


def test_redis_stopped_gives_503_with_retry_after_and_writes_nothing(
    live_server: ServerFactory,
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    gate: Gate,
) -> None:
    use_queue(monkeypatch, redis_server)
    server = live_server()
    flask_app = server.hybrid.flask_app
    with client(server) as http:
        kept = http.post("/api/tasks", json={"kind": "block"}).json()["id"]
        assert http.post(f"/api/tasks/{kept}/cancel").status_code == 200
        redis_server.stop()
        for side in SIDES.values():
            # A hang would raise httpx.ReadTimeout after REQUEST_TIMEOUT seconds.
            refused = http.post(side, json={"kind": "block"}, headers={"Idempotency-Key": side})
            assert refused.status_code == 503, side
            assert int(refused.headers["retry-after"]) > 0
            assert refused.json()["error"].startswith("the task queue is unavailable")
            assert "nothing was queued" in refused.json()["error"]
            again = http.post(f"{side}/{kept}/retry")
            assert again.status_code == 503, side
            assert int(again.headers["retry-after"]) > 0
        assert row_count(flask_app) == 1
        assert task_row(flask_app, kept)["status"] == "cancelled"  # the retry changed nothing

        redis_server.start()
        for side in SIDES.values():
            accepted = http.post(side, json={"kind": "block"}, headers={"Idempotency-Key": side})
            assert accepted.status_code == 201, side
        assert http.post(f"/api/v2/tasks/{kept}/retry").json()["status"] == "queued"
    assert row_count(flask_app) == 3


def test_a_hung_redis_gives_503_not_a_hang(
    live_server: ServerFactory,
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    gate: Gate,
) -> None:
    """Redis accepts connections but answers nothing (paused): 503 after REDIS_TIMEOUT."""
    use_queue(monkeypatch, redis_server)
    server = live_server()
    with client(server) as http:
        assert http.post("/api/tasks", json={"kind": "block"}).status_code == 201
        redis_server.pause()
        try:
            for side in SIDES.values():
                # A hang would raise httpx.ReadTimeout after REQUEST_TIMEOUT seconds.
                refused = http.post(side, json={"kind": "block"})
                assert refused.status_code == 503, side
                assert int(refused.headers["retry-after"]) > 0
                assert "nothing was queued" in refused.json()["error"]
        finally:
            redis_server.resume()
        assert http.post("/api/v2/tasks", json={"kind": "block"}).status_code == 201
    assert row_count(server.hybrid.flask_app) == 2


# -- the same answers on both sides ---------------------------------------------------------

PARITY_HEADERS = (*(h for h in COMPARED_HEADERS if h != "vary"), "idempotent-replayed")
"""Response headers both sides must send alike (``Retry-After`` among them). ``Vary:
Cookie`` is Flask's alone, as in ``test_parity.py``: the native handlers read no cookie."""


def test_both_sides_answer_alike(live_server: ServerFactory, backend: Backend, gate: Gate) -> None:
    """Same status, headers and JSON bytes from Flask's view and the native handler."""
    server = live_server()
    flask_app = server.hybrid.flask_app
    key = {"Idempotency-Key": "same"}
    with client(server) as http:
        queued = queued_task(http, "/api/tasks", flask_app, backend)
        http.post("/api/tasks", json={"kind": "block"}, headers=key)
    cases: list[tuple[str, dict[str, Any]]] = [
        ("", {"json_body": {"kind": "block"}, "headers": key}),  # a replay: 200
        ("", {"json_body": {"kind": "sleep"}, "headers": key}),  # the key reused: 409
        ("", {"json_body": {"kind": "mine"}}),
        ("", {"json_body": {"kind": "block"}, "headers": {"Idempotency-Key": "k" * 256}}),
        ("", {"json_body": {"kind": "sleep", "params": {"x": "y" * MAX_PARAMS_BYTES}}}),
        ("", {"body": b"[1]", "headers": {"Content-Type": "application/json"}}),
        (f"/{queued}/retry", {}),
        ("/4242/cancel", {}),
        ("/0/retry", {}),
    ]
    for suffix, request in cases:
        assert_parity(
            server,
            "POST",
            f"/api/tasks{suffix}",
            native_path=f"/api/v2/tasks{suffix}",
            compare_headers=PARITY_HEADERS,
            same_bytes=True,
            ignore=["started_at", "progress", "status", "attempts"],
            **request,
        )
    assert row_count(flask_app) == 3 if backend.name == "inprocess" else 2


def test_both_sides_answer_503_alike(
    live_server: ServerFactory, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_queue(monkeypatch, redis_server)
    server = live_server()
    redis_server.stop()
    flask, native = assert_parity(
        server,
        "POST",
        "/api/tasks",
        native_path="/api/v2/tasks",
        json_body={"kind": "sleep"},
        compare_headers=PARITY_HEADERS,
        same_bytes=True,
    )
    assert (flask.status, native.status) == (503, 503)
    assert native.headers["retry-after"] == flask.headers["retry-after"]
    assert row_count(server.hybrid.flask_app) == 0


# -- the task page's buttons (WebTest, CSRF on) ----------------------------------------------


@pytest.fixture
def page_app(settings: Settings) -> Iterator[Callable[[], webtest.TestApp]]:
    """Build, on demand (after the test chose its backend), the service's app under WebTest."""
    built: list[Any] = []

    def make() -> webtest.TestApp:
        hybrid = build_hybrid(settings)
        upgrade_database(hybrid.flask_app)
        built.append(hybrid)
        return webtest.TestApp(hybrid.flask_app)

    yield make
    for hybrid in built:
        hybrid.close()
        with hybrid.flask_app.app_context():
            from app.extensions import db

            db.engine.dispose()


def start_task(testapp: webtest.TestApp, kind: str) -> webtest.TestResponse:
    """Create a task through the JSON API; return its page."""
    task_id = testapp.post_json("/api/tasks", {"kind": kind}).json["id"]
    return testapp.get(f"/tasks/{task_id}")


def buttons(page: webtest.TestResponse) -> dict[str, bool]:
    """``{action: enabled}`` of the task page's buttons."""
    return {
        button["data-action"]: not button.has_attr("disabled")
        for button in page.html.select("button[data-action]")
    }


def test_page_buttons_cancel_and_retry_with_csrf(
    page_app: Callable[[], webtest.TestApp], gate: Gate
) -> None:
    testapp = page_app()
    testapp.post_json("/api/tasks", {"kind": "block"})  # takes the one task thread
    page = start_task(testapp, "block")  # stays queued
    assert page.html.select_one("[data-status]").text == "queued"
    assert page.html.select_one("[data-attempts]").text == "not started"
    assert buttons(page) == {"cancel": True, "retry": False}
    token = page.forms["cancel-task"]["csrf_token"].value
    assert token

    refused = testapp.post("/tasks/2/cancel", status=400)
    assert "The CSRF token is missing." in refused

    cancelled = page.forms["cancel-task"].submit(status=303).follow()
    assert "Task 2 cancelled." in cancelled
    assert cancelled.html.select_one("[data-status]").text == "cancelled"
    assert buttons(cancelled) == {"cancel": False, "retry": True}

    stale = page.forms["cancel-task"].submit(status=409)  # the page before the cancel
    assert "Task 2 has already finished (cancelled): there is nothing to cancel." in stale

    retried = cancelled.forms["retry-task"].submit(status=303).follow()
    assert "Task 2 queued again." in retried
    assert buttons(retried) == {"cancel": True, "retry": False}

    listing = testapp.get("/tasks")
    statuses = [cell.text for cell in listing.html.select("#tasks [data-status]")]
    assert statuses[0] == "queued"
    gate.open()


def test_page_shows_attempts_of_a_failed_task(
    page_app: Callable[[], webtest.TestApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(params: NoParams, report: kinds.Report) -> dict[str, Any]:
        raise RuntimeError("boom")

    register(monkeypatch, "explode", explode, max_attempts=2, retry_backoff=0.05)
    testapp = page_app()
    task_id = testapp.post_json("/api/tasks", {"kind": "explode"}).json["id"]
    flask_app = testapp.app
    wait_status(flask_app, task_id, "failed")
    page = testapp.get(f"/tasks/{task_id}")
    assert page.html.select_one("[data-attempts]").text == "attempt 2 of 2"
    assert buttons(page) == {"cancel": False, "retry": True}
    row = testapp.get("/tasks").html.select_one("#tasks tbody tr")
    assert "failed" in row.text and "attempt 2 of 2" in row.text


def test_page_retries_an_interrupted_task(page_app: Callable[[], webtest.TestApp]) -> None:
    testapp = page_app()
    task_id = testapp.post_json("/api/tasks", {"kind": "sleep", "params": {"steps": 1}}).json["id"]
    wait_status(testapp.app, task_id, "succeeded")
    mark_interrupted(testapp.app, task_id)
    page = testapp.get(f"/tasks/{task_id}")
    assert page.html.select_one("[data-status]").text == "interrupted"
    assert buttons(page) == {"cancel": False, "retry": True}
    retried = page.forms["retry-task"].submit(status=303).follow()
    assert f"Task {task_id} queued again." in retried
    assert wait_status(testapp.app, task_id, "succeeded")["error"] is None


def test_page_with_the_queue_down_flashes_503_not_500(
    page_app: Callable[[], webtest.TestApp],
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_queue(monkeypatch, redis_server)
    testapp = page_app()
    page = start_task(testapp, "sleep")
    cancelled = page.forms["cancel-task"].submit(status=303).follow()
    redis_server.stop()

    down = cancelled.forms["retry-task"].submit(status=503)
    assert int(down.headers["Retry-After"]) > 0
    assert "the task queue is unavailable" in down
    assert down.html.select_one("[data-status]").text == "cancelled"

    form = testapp.get("/tasks?kind=sleep").forms["new-task"]
    refused = form.submit(status=503)
    assert "the task queue is unavailable" in refused
    assert int(refused.headers["Retry-After"]) > 0
    with testapp.app.app_context():
        assert row_count(testapp.app) == 1


def test_json_of_the_page_script_names_the_statuses(
    page_app: Callable[[], webtest.TestApp], gate: Gate
) -> None:
    """The script enables each button for the statuses the server renders it enabled for."""
    testapp = page_app()
    page = start_task(testapp, "block")
    script = page.html.find_all("script")[-1].text
    line = next(line for line in script.splitlines() if "const enabledIn" in line)
    enabled_in = json.loads(line.split("=", 1)[1].strip().rstrip(";"))
    assert enabled_in == {
        "cancel": ["queued", "running"],
        "retry": ["cancelled", "failed", "interrupted"],
    }
