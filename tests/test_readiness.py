"""``GET /readyz`` over real sockets: 200 when ready, 503 naming the check that failed.

The database, the migrations, the executor's admission state and the drain are
each made to fail for real: a database URL whose port nothing listens on, a
schema whose recorded revision is not the head, Flask views holding every
thread, and the drain flag the shutdown sets first.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import httpx
import pytest
from flask import Flask
from sqlalchemy import create_engine, text

from config import Settings
from server.build import build_hybrid
from server.checks import bind
from server.serve import serve
from tests.support.routes import with_views
from tests.support.server import ServerFactory

CHECKS = {"database", "migrations", "executor", "draining"}


def readyz(base: str) -> httpx.Response:
    """``GET /readyz``, checking the parts every answer has."""
    answer = httpx.get(f"{base}/readyz", timeout=10)
    assert answer.headers["Cache-Control"] == "no-store"
    assert set(answer.json()["checks"]) == CHECKS
    return answer


def test_ready_when_everything_is_fine(live_server: ServerFactory) -> None:
    answer = readyz(live_server().url)
    assert answer.status_code == 200
    assert answer.json() == {"status": "ready", "checks": dict.fromkeys(CHECKS, "ok")}


def test_not_ready_while_draining(live_server: ServerFactory) -> None:
    server = live_server()
    server.loop.call_soon_threadsafe(server.hybrid.draining.set)
    answer = readyz(server.url)
    assert answer.status_code == 503
    assert answer.json()["status"] == "not ready"
    assert answer.json()["checks"]["draining"] == "draining: the server is stopping"


def test_not_ready_when_the_database_is_not_at_head(
    live_server: ServerFactory, database_url: str
) -> None:
    server = live_server()
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM alembic_version"))
    engine.dispose()
    answer = readyz(server.url)
    assert answer.status_code == 503
    checks = answer.json()["checks"]
    assert checks["database"] == "ok"
    assert checks["migrations"] == "not at head: run python manage.py db upgrade"


def test_not_ready_when_the_executor_is_saturated(live_server: ServerFactory) -> None:
    release = threading.Event()
    entered = threading.Semaphore(0)

    def add_views(app: Flask) -> None:
        def hold() -> str:
            entered.release()
            release.wait(10)
            return "released"

        app.add_url_rule("/_test/hold", "test_hold", hold)

    server = live_server(
        create_flask_app=with_views(add_views), threads=2, reserved_threads=0, max_queue=0
    )
    # Every thread the bridge may take (2, less a feature's own, e.g. a job's thread).
    bridge_threads = server.hybrid.container.max_workers
    holders = [
        threading.Thread(
            target=httpx.get, args=(f"{server.url}/_test/hold",), kwargs={"timeout": 10}
        )
        for _ in range(bridge_threads)
    ]
    for holder in holders:
        holder.start()
    try:
        for _ in holders:
            assert entered.acquire(timeout=10)
        answer = readyz(server.url)
        assert answer.status_code == 503
        assert answer.json()["checks"]["executor"].startswith(
            f"saturated: {bridge_threads} requests in flight"
        )
    finally:
        release.set()
        for holder in holders:
            holder.join(10)
    assert readyz(server.url).status_code == 200


@pytest.fixture
def unreachable_database(settings: Settings) -> Iterator[str]:
    """A server whose database cannot be opened (its start-up check skipped); its URL."""
    broken = settings.model_copy(
        # Nothing listens on port 1: the connection is refused at once.
        update={"database_url": "postgresql+psycopg://postgres@127.0.0.1:1/none"}
    )
    hybrid = build_hybrid(broken, features=())
    sockets = bind("127.0.0.1", 0)
    port = sockets[0].getsockname()[1]
    holder: dict[str, asyncio.AbstractEventLoop | asyncio.Event] = {}
    started = threading.Event()

    async def main() -> None:
        stop = asyncio.Event()
        holder["loop"], holder["stop"] = asyncio.get_running_loop(), stop
        started.set()
        await serve(broken, hybrid, stop=stop, sockets=sockets)

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop, stop = holder["loop"], holder["stop"]
        assert isinstance(loop, asyncio.AbstractEventLoop) and isinstance(stop, asyncio.Event)
        loop.call_soon_threadsafe(stop.set)
        thread.join(15)
        hybrid.close()


def test_not_ready_when_the_database_is_unreachable(unreachable_database: str) -> None:
    answer = readyz(unreachable_database)
    assert answer.status_code == 503
    checks = answer.json()["checks"]
    assert checks["database"].startswith("unreachable: connection failed")
    assert checks["migrations"] == "unknown: the database did not answer"
    assert checks["executor"] == "ok" and checks["draining"] == "ok"
