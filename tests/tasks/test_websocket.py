"""The native WebSocket pushes the progress of a real task as it happens."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from tornado.websocket import websocket_connect

from tests.support.server import ServerFactory, close_websocket


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
