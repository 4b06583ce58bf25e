"""The native WebSocket pushes the progress of a real task as it happens."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import httpx
import pytest
from tornado.websocket import websocket_connect

from tests.support.server import ServerFactory, close_websocket
from wsgi_bridge.testing import wait_for


async def collect_until_final(url: str, create: Any) -> list[dict[str, Any]]:
    """Open the socket at ``url``, read its hello, call ``create`` (in a thread), then
    collect the task of every event until one is final; return them in order."""
    connection = await websocket_connect(url)
    try:
        hello = json.loads(await connection.read_message())
        assert hello["type"] == "hello"
        await asyncio.get_running_loop().run_in_executor(None, create)
        events: list[dict[str, Any]] = []
        while True:
            message = await asyncio.wait_for(connection.read_message(), 10)
            assert message is not None, "server closed the WebSocket"
            event = json.loads(message)
            events.append(event["task"])
            if event["task"]["status"] not in ("queued", "running"):
                return events
    finally:
        await close_websocket(connection)


def test_progress_of_a_real_task_arrives_over_the_websocket(live_server: ServerFactory) -> None:
    server = live_server()

    def create() -> None:
        response = httpx.post(
            f"{server.url}/api/tasks",
            json={"kind": "sleep", "params": {"steps": 4, "delay": 0.05}},
        )
        assert response.status_code == 201

    events = asyncio.run(collect_until_final(f"{server.ws_url}/ws/tasks?task=1", create))
    assert [e["status"] for e in events] == ["queued"] + ["running"] * 5 + ["succeeded"]
    assert [e["progress"] for e in events] == [0, 0, 25, 50, 75, 100, 100]
    assert events[-1]["result"] == {"slept_seconds": 0.2}


def test_a_filtered_socket_ignores_other_tasks(live_server: ServerFactory) -> None:
    server = live_server()

    def create_two() -> None:
        for _ in range(2):
            httpx.post(
                f"{server.url}/api/tasks",
                json={"kind": "sleep", "params": {"steps": 1, "delay": 0}},
            )

    events = asyncio.run(collect_until_final(f"{server.ws_url}/ws/tasks?task=2", create_two))
    assert {e["id"] for e in events} == {2}


@pytest.mark.parametrize("task", ["abc", "%C2%B2", "99999999999999999999999", "0"])
def test_bad_filter_closes_with_policy_violation(live_server: ServerFactory, task: str) -> None:
    """Anything but an id in the valid range, including digits str.isdigit() accepts
    but int() does not (superscript two), is refused with 1008."""
    server = live_server()

    async def connect() -> tuple[int | None, str | None]:
        connection = await websocket_connect(f"{server.ws_url}/ws/tasks?task={task}")
        try:
            assert await connection.read_message() is None
            return connection.close_code, connection.close_reason
        finally:
            await close_websocket(connection)

    assert asyncio.run(connect()) == (1008, "task must be an integer")


async def first_events(url: str, act: Any, count: int) -> list[dict[str, Any]]:
    """Open the socket at ``url``, read its hello, call ``act`` (in a thread), then
    return the task of the next ``count`` events."""
    connection = await websocket_connect(url)
    try:
        hello = json.loads(await connection.read_message())
        assert hello == {"type": "hello", "task": None, "user": None}
        await asyncio.get_running_loop().run_in_executor(None, act)
        events: list[dict[str, Any]] = []
        while len(events) < count:
            message = await asyncio.wait_for(connection.read_message(), 10)
            assert message is not None, "server closed the WebSocket"
            events.append(json.loads(message)["task"])
        return events
    finally:
        await close_websocket(connection)


@pytest.mark.parametrize("path", ["/api/tasks", "/api/v2/tasks"], ids=["flask", "native"])
def test_the_list_s_socket_gets_queued_first_for_a_task_it_never_saw(
    live_server: ServerFactory, path: str
) -> None:
    """The list page subscribes with no filter: a new task's first event is ``queued``,
    with what the list shows (name, kind, attempts, creation time), before it runs."""
    server = live_server()

    def create() -> None:
        response = httpx.post(
            f"{server.url}{path}",
            json={"kind": "sleep", "params": {"steps": 1, "delay": 0}, "name": "seen live"},
        )
        assert response.status_code == 201

    events = asyncio.run(first_events(f"{server.ws_url}/ws/tasks", create, 2))
    queued = events[0]
    assert (queued["id"], queued["status"], queued["name"], queued["kind"]) == (
        1,
        "queued",
        "seen live",
        "sleep",
    )
    assert (queued["attempts"], queued["progress"]) == (0, 0)
    assert queued["created_at"] is not None
    assert events[1]["status"] == "running"


def test_a_retry_is_published_as_queued(live_server: ServerFactory) -> None:
    server = live_server()
    with httpx.Client(base_url=server.url, timeout=30) as api:
        task_id = api.post("/api/tasks", json={"kind": "sleep", "params": {"delay": 0.2}}).json()[
            "id"
        ]
        assert api.post(f"/api/tasks/{task_id}/cancel").status_code == 200

        def cancelled() -> bool:
            return bool(api.get(f"/api/tasks/{task_id}").json()["status"] == "cancelled")

        assert wait_for(cancelled, 10), "the task was not cancelled"  # at its next report

        def retry() -> None:
            assert api.post(f"/api/v2/tasks/{task_id}/retry").status_code == 200

        events = asyncio.run(first_events(f"{server.ws_url}/ws/tasks", retry, 1))
    assert (events[0]["id"], events[0]["status"]) == (task_id, "queued")


def test_queued_reaches_sockets_before_the_runner_s_events(live_server: ServerFactory) -> None:
    """The ``queued`` event is published before the task is handed to the runner, so the
    runner's ``running`` can never overtake it (a page would then end on ``queued``).

    A subscriber ahead of the WebSocket's holds the ``queued`` event until the runner
    published ``running`` (or 2 s passed): before the fix the hand-over came first and
    ``running`` reached the socket first every time; now no ``running`` can exist yet.
    """
    server = live_server()
    hub = server.hybrid.flask_app.extensions["task_events"]
    running = threading.Event()

    def overtaken(event: dict[str, Any]) -> None:
        status = event["task"]["status"]
        if status == "running":
            running.set()
        elif status == "queued":
            running.wait(2)  # the runner's chance to overtake, if it has the task already

    unsubscribe = hub.subscribe(overtaken)  # before the socket's own subscription
    try:

        def create() -> None:
            response = httpx.post(
                f"{server.url}/api/tasks", json={"kind": "sleep", "params": {"delay": 0}}
            )
            assert response.status_code == 201

        events = asyncio.run(first_events(f"{server.ws_url}/ws/tasks", create, 2))
    finally:
        unsubscribe()
    assert [event["status"] for event in events] == ["queued", "running"]
