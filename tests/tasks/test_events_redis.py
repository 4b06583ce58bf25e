"""Task events across processes through Redis pub/sub (``TASK_BACKEND=queue``).

A private ``redis-server`` per test (:mod:`tests.support.redis`). Two
:class:`~app.tasks.events.RedisTaskEvents` hubs on one Redis stand for two
processes; then two real ``manage.py serve`` processes show that an event
published anywhere reaches a WebSocket connected to either of them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest
import redis
from tornado.websocket import websocket_connect

from app.tasks.events import Event, RedisTaskEvents
from app.tasks.settings import TaskSettings
from config import ConfigError, load_feature_settings
from tests.support.cli import ServerProcess, environment
from tests.support.redis import RedisServer
from tests.support.server import close_websocket
from wsgi_bridge.testing import wait_for

PREFIX = "test-tasks"
CHANNEL = f"{PREFIX}:events"


def event(task_id: int, status: str = "running") -> Event:
    """A task event as the runner publishes it (the fields the tests look at)."""
    return {"type": "task", "task": {"id": task_id, "status": status, "progress": 0}}


def subscribers(server: RedisServer, channel: str = CHANNEL) -> int:
    """How many connections are subscribed to ``channel`` (``PUBSUB NUMSUB``)."""
    client = redis.Redis.from_url(server.url, socket_timeout=5)
    try:
        ((_, count),) = client.pubsub_numsub(channel)
        return int(count)
    finally:
        client.close()


@contextmanager
def hub(server: RedisServer, socket_timeout: float = 2.0) -> Iterator[RedisTaskEvents]:
    """A :class:`RedisTaskEvents` on ``server``, closed afterwards."""
    events = RedisTaskEvents(server.url, prefix=PREFIX, socket_timeout=socket_timeout)
    try:
        yield events
    finally:
        events.close()


@asynccontextmanager
async def relaying(*hubs: RedisTaskEvents) -> AsyncIterator[list[asyncio.Task[None]]]:
    """Run each hub's relay as a task (as the tasks feature's ``start`` does); cancel and
    await them afterwards (as its ``stop`` does)."""
    tasks = [asyncio.create_task(h.relay()) for h in hubs]
    try:
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with pytest.raises(asyncio.CancelledError):
                await task


async def eventually(predicate: Callable[[], bool], timeout: float = 10) -> bool:
    """Wait on the event loop (relays keep running) until ``predicate()`` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


def test_an_event_published_on_one_process_reaches_the_subscribers_of_every_process_once(
    redis_server: RedisServer,
) -> None:
    received_a: list[Event] = []
    received_b: list[Event] = []

    async def main() -> None:
        with hub(redis_server) as a, hub(redis_server) as b:
            a.subscribe(received_a.append)
            b.subscribe(received_b.append)
            async with relaying(a, b):
                assert await eventually(lambda: subscribers(redis_server) == 2)
                # Published from a worker thread, as the runner does.
                await asyncio.to_thread(a.publish, event(1))
                await asyncio.to_thread(b.publish, event(2))
                assert await eventually(lambda: len(received_a) >= 2 and len(received_b) >= 2)
                # One channel keeps the order: a direct copy to A's own subscriber
                # would have come before the Redis one, so this proves exactly once.
                assert received_a == [event(1), event(2)]
                assert received_b == [event(1), event(2)]
        assert subscribers(redis_server) == 0  # the relays unsubscribed and closed

    asyncio.run(main())


def test_without_a_relay_local_subscribers_get_nothing_directly(
    redis_server: RedisServer,
) -> None:
    """Delivery is through Redis only: a process that does not relay (a queue worker)
    does not call subscribers itself."""
    received: list[Event] = []
    with hub(redis_server) as events:
        events.subscribe(received.append)
        events.publish(event(1))
    assert received == []


def test_bad_messages_on_the_channel_are_logged_and_skipped(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    received: list[Event] = []
    raw = redis.Redis.from_url(redis_server.url)

    async def main() -> None:
        with hub(redis_server) as events:
            events.subscribe(received.append)
            async with relaying(events):
                assert await eventually(lambda: subscribers(redis_server) == 1)
                for bad in (b"not json", b"[1, 2]", b'"a string"', b"\xff\xfe"):
                    raw.publish(CHANNEL, bad)
                raw.publish(CHANNEL, json.dumps(event(7)))
                assert await eventually(lambda: len(received) >= 1)
                assert received == [event(7)]

    with caplog.at_level(logging.WARNING, logger="app.tasks.events"):
        asyncio.run(main())
    raw.close()
    skipped = [r.getMessage() for r in caplog.records if "skipped a message" in r.getMessage()]
    assert len(skipped) == 4, skipped


def publish_in_thread(events: RedisTaskEvents, payload: Event) -> BaseException | None:
    """Publish from another thread, as a worker does; return what it raised, if anything.

    :raises AssertionError: if ``publish`` has not returned within 30 s.
    """
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            events.publish(payload)
        except BaseException as error:
            outcome.append(error)
        else:
            outcome.append(None)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "publish did not return with Redis down"
    return outcome[0]


def test_publish_with_redis_down_or_hung_returns_without_raising_and_warns_once(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A Redis outage must not fail the task that publishes: the event is dropped,
    one warning per outage (not one per event), and a line when it works again."""
    with (
        caplog.at_level(logging.INFO, logger="app.tasks.events"),
        hub(redis_server, socket_timeout=0.5) as events,
    ):
        redis_server.stop()
        for task_id in range(5):
            assert publish_in_thread(events, event(task_id)) is None
        redis_server.start()
        redis_server.pause()  # accepts connections, answers nothing: the socket timeout
        try:
            assert publish_in_thread(events, event(6)) is None
        finally:
            redis_server.resume()
        assert publish_in_thread(events, event(7)) is None

    messages = [r.getMessage() for r in caplog.records]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, messages
    assert "1 dropped so far" in warnings[0].getMessage()
    assert any("publishing task events to Redis again" in m and "6 dropped" in m for m in messages)


def test_the_relay_reconnects_after_a_redis_restart_and_delivers_again(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    received: list[Event] = []

    async def main() -> None:
        with hub(redis_server) as events:
            events.subscribe(received.append)
            async with relaying(events):
                assert await eventually(lambda: subscribers(redis_server) == 1)
                await asyncio.to_thread(events.publish, event(1))
                assert await eventually(lambda: received == [event(1)])

                await asyncio.to_thread(redis_server.stop)
                await asyncio.to_thread(events.publish, event(2))  # lost: nobody to take it
                await asyncio.sleep(0.5)  # the relay retries a few times meanwhile
                await asyncio.to_thread(redis_server.start)  # same port, nothing kept
                assert await eventually(lambda: subscribers(redis_server) == 1, timeout=30)
                await asyncio.to_thread(events.publish, event(3))
                assert await eventually(lambda: len(received) >= 2)
                assert received == [event(1), event(3)]

    with caplog.at_level(logging.INFO, logger="app.tasks.events"):
        asyncio.run(main())
    messages = [r.getMessage() for r in caplog.records]
    assert sum("relay lost Redis" in m for m in messages) == 1, messages  # once per outage
    assert sum("relaying task events again" in m for m in messages) == 1, messages


def test_a_relay_cancelled_while_redis_is_down_ends_cleanly(redis_server: RedisServer) -> None:
    async def main() -> None:
        with hub(redis_server) as events:
            redis_server.stop()
            async with relaying(events):
                await asyncio.sleep(0.3)  # a failed attempt or two, then in its backoff

    asyncio.run(main())


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379/0", "127.0.0.1:6379", ""])
def test_a_redis_url_without_a_redis_scheme_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("REDIS_URL", url)
    with pytest.raises(ConfigError, match=r"REDIS_URL: must start with redis://, rediss://"):
        load_feature_settings(TaskSettings)


def test_a_bad_redis_url_s_password_is_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "http://user:s3cret@cache:6379/0")
    with pytest.raises(ConfigError) as raised:
        load_feature_settings(TaskSettings)
    assert "s3cret" not in str(raised.value)
    assert "REDIS_URL" in str(raised.value)


# -- over real sockets: two served processes, one Redis -------------------------------


def test_an_event_published_in_another_process_reaches_websockets_on_two_servers(
    migrated: str, redis_server: RedisServer, servers: list[ServerProcess]
) -> None:
    env = environment(
        migrated,
        PORT="0",
        THREADS="4",
        SHUTDOWN_TIMEOUT="5",
        TASK_BACKEND="queue",
        REDIS_URL=redis_server.url,
        TASK_QUEUE_PREFIX=PREFIX,
    )
    for _ in range(2):
        servers.append(ServerProcess("--no-reload", env=env))
    ports = [server.port() for server in servers]
    # Each server's relay subscribes once it serves; one connection per process.
    assert wait_for(lambda: subscribers(redis_server) == 2, 15), [s.log for s in servers]

    published = event(1, "succeeded")

    async def main() -> list[Any]:
        connections = [await websocket_connect(f"ws://127.0.0.1:{port}/ws/tasks") for port in ports]
        try:
            for connection in connections:
                hello = json.loads(await connection.read_message())
                assert hello["type"] == "hello"
            # This test process stands for a queue worker: it publishes, nobody here relays.
            with hub(redis_server) as worker:
                await asyncio.to_thread(worker.publish, published)
            return [
                json.loads(await asyncio.wait_for(connection.read_message(), 10))
                for connection in connections
            ]
        finally:
            for connection in connections:
                await close_websocket(connection)

    assert asyncio.run(main()) == [published, published]

    for server in servers:
        status, _ = server.stop(timeout=20)
        assert status == 0, server.log
        assert "Traceback" not in server.log, server.log
        assert "Unclosed" not in server.log, server.log
    assert subscribers(redis_server) == 0  # each relay unsubscribed and closed on shutdown
