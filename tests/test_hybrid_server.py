"""The hybrid server over real sockets: the problem this project exists to solve.

Flask views run on the shared thread pool, so one blocking view blocks only
its own request; native routes are answered by the IOLoop even while every
worker thread is busy.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Executor, ThreadPoolExecutor

import httpx
import pytest
from flask import Flask
from tornado.websocket import websocket_connect

from app import create_app
from app.feature import Feature
from config import Settings
from tests.support.routes import HelloSocket, add_native_route
from tests.support.server import ServerFactory, close_websocket, refuses_connections

BARRIER_TIMEOUT = 10.0


def with_test_views(
    barrier: threading.Barrier | None = None, release: threading.Event | None = None
):  # type: ignore[no-untyped-def]
    """A Flask factory adding test-only views to the real app."""

    def factory(settings: Settings, executor: Executor, features: Iterable[Feature]) -> Flask:
        app = create_app(settings, executor, features)

        @app.get("/_test/sleep")
        def sleep() -> dict[str, float]:
            started = time.monotonic()  # the server runs in this process: one clock
            time.sleep(1.0)
            return {"started": started, "ended": time.monotonic()}

        @app.get("/_test/barrier")
        def meet() -> str:
            assert barrier is not None
            barrier.wait(BARRIER_TIMEOUT)  # BrokenBarrierError -> 500 if not concurrent
            return "met"

        @app.get("/_test/hold")
        def hold() -> str:
            assert release is not None
            release.wait(BARRIER_TIMEOUT)
            return "released"

        @app.get("/_test/raise")
        def explode() -> str:
            raise RuntimeError("view failed on purpose")

        @app.get("/api/_test/items")
        def items() -> dict[str, list[object]]:
            return {"items": []}

        return app

    return factory


def test_two_blocking_views_run_at_the_same_time(live_server: ServerFactory) -> None:
    barrier = threading.Barrier(2)
    server = live_server(with_test_views(barrier=barrier))
    with ThreadPoolExecutor(2) as clients:
        responses = list(
            clients.map(lambda _: httpx.get(f"{server.url}/_test/barrier", timeout=15), range(2))
        )
    # Each view waits for the other inside the barrier: both can only pass if
    # they ran at the same time on two worker threads.
    assert [(r.status_code, r.text) for r in responses] == [(200, "met"), (200, "met")]


def test_two_one_second_views_overlap(
    live_server: ServerFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two 1 s views requested together run at the same time: each starts before the other ends.

    Order, not speed: run one after the other, the second would start after the first
    ended, however fast or loaded the machine (the barrier test above proves the same
    with no clock at all). The elapsed times are printed, not asserted.
    """
    server = live_server(with_test_views())
    httpx.get(f"{server.url}/healthz")  # warm up
    started = time.perf_counter()

    def fetch(_: int) -> dict[str, float]:
        response = httpx.get(f"{server.url}/_test/sleep", timeout=15)
        assert response.status_code == 200
        span: dict[str, float] = response.json()
        span["finished"] = time.perf_counter() - started
        return span

    with ThreadPoolExecutor(2) as clients:
        spans = list(clients.map(fetch, range(2)))
    finished = sorted(span["finished"] for span in spans)
    with capsys.disabled():
        print(f"\n  two 1 s Flask views finished at {finished[0]:.3f} s and {finished[1]:.3f} s")
    assert max(span["started"] for span in spans) < min(span["ended"] for span in spans), spans


def test_native_route_answers_while_every_worker_is_blocked(live_server: ServerFactory) -> None:
    release = threading.Event()
    server = live_server(with_test_views(release=release))
    threads = server.hybrid.settings.threads
    with ThreadPoolExecutor(threads) as clients:
        held = [
            clients.submit(httpx.get, f"{server.url}/_test/hold", timeout=15)
            for _ in range(threads)
        ]
        deadline = time.monotonic() + 5
        while server.hybrid.container.in_flight < threads and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.hybrid.container.in_flight == threads
        try:
            health = httpx.get(f"{server.url}/healthz", timeout=2)
            assert health.status_code == 200
            assert health.json() == {
                "status": "ok",
                "pid": os.getpid(),  # the live server runs in this process
                "wsgi": {"in_flight": threads},
            }
            assert not any(future.done() for future in held)  # still blocked
        finally:
            release.set()
        assert [future.result().text for future in held] == ["released"] * threads


def test_an_exception_in_a_view_is_a_500_and_serving_goes_on(
    live_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = live_server(with_test_views())
    with httpx.Client(base_url=server.url) as client:
        failed = client.get("/_test/raise")
        assert failed.status_code == 500
        assert failed.headers["content-type"].startswith("text/html")
        assert "internal server error" in failed.text
        again = client.get("/api/_test/items")
        assert again.status_code == 200
    logged = [r for r in caplog.records if "view failed on purpose" in str(r.exc_info)]
    assert len(logged) == 1


def test_home_page_and_api_through_the_bridge(live_server: ServerFactory) -> None:
    server = live_server(with_test_views())
    with httpx.Client(base_url=server.url, timeout=10) as client:
        home = client.get("/")
        assert home.status_code == 200 and 'href="/healthz"' in home.text
        login = client.get("/auth/login")
        assert login.status_code == 200 and 'action="/auth/login"' in login.text
        assert client.get("/static/style.css").status_code == 200
        assert client.get("/api/_test/items").json() == {"items": []}
        page = client.get("/nowhere")
        assert page.status_code == 404 and "<h1>404</h1>" in page.text
        api = client.get("/api/nowhere")
        assert (api.status_code, api.headers["content-type"]) == (404, "application/json")
        assert set(api.json()) == {"error"}


def test_graceful_shutdown_lets_in_flight_requests_finish(live_server: ServerFactory) -> None:
    release = threading.Event()
    server = live_server(with_test_views(release=release))
    with ThreadPoolExecutor(1) as clients:
        held = clients.submit(httpx.get, f"{server.url}/_test/hold", timeout=15)
        deadline = time.monotonic() + 5
        while server.hybrid.container.in_flight < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.loop.call_soon_threadsafe(server.stop.set)  # as SIGTERM does
        assert refuses_connections(server.port), "still accepting connections after 10 s"
        with pytest.raises(httpx.ConnectError):  # no longer accepting
            httpx.get(f"{server.url}/healthz", timeout=2)
        assert not held.done()
        release.set()
        response = held.result()
    assert (response.status_code, response.text) == (200, "released")


def test_graceful_shutdown_closes_websockets_with_1001(live_server: ServerFactory) -> None:
    server = live_server()
    add_native_route(server.hybrid, "/_test/ws", HelloSocket)

    async def watch() -> tuple[int | None, str | None]:
        connection = await websocket_connect(f"{server.ws_url}/_test/ws")
        try:
            hello = json.loads(await connection.read_message())  # type: ignore[arg-type]
            assert hello == {"type": "hello", "user": None}
            assert len(server.hybrid.websockets) == 1
            server.loop.call_soon_threadsafe(server.stop.set)  # as SIGTERM does
            assert await asyncio.wait_for(connection.read_message(), BARRIER_TIMEOUT) is None
            return connection.close_code, connection.close_reason
        finally:
            await close_websocket(connection)

    assert asyncio.run(watch()) == (1001, "server shutting down")
