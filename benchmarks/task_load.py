"""The task-queue benchmark's load: enqueue over HTTP, watch the WebSocket, time both.

Both sides use ``time.perf_counter()`` in this one process, so a task's end-to-end
latency is the time from just before its ``POST /api/tasks`` to the arrival of the
``/ws/tasks`` event that reports it ``succeeded``. Every loop is bounded in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import http.client
import json
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import tornado.websocket

from benchmarks.clients import HOST, percentile

TRIVIAL_TASK = {"kind": "sleep", "params": {"steps": 1, "delay": 0}}
"""The task every request enqueues: one step, no sleep; its cost is the machinery's."""

FINAL_STATUSES = frozenset({"succeeded", "failed", "interrupted", "cancelled"})


def _seconds_between(start: str | None, end: str | None) -> float:
    """Seconds between two ISO 8601 stamps of a task (NaN if one is missing)."""
    if not start or not end:
        return math.nan
    return (dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(start)).total_seconds()


class EventWatcher:
    """One WebSocket client of ``/ws/tasks`` on its own thread and event loop.

    It notes, for each task id, the first final status it sees and when
    (``time.perf_counter()``, the clock the enqueueing threads use).

    :param url: the WebSocket URL.
    :param connect_timeout: seconds to connect and receive the ``hello`` message.
    """

    def __init__(self, url: str, connect_timeout: float = 10.0) -> None:
        self.url = url
        self.connect_timeout = connect_timeout
        self.final: dict[int, tuple[str, float]] = {}
        """Task id -> (its first final status, when the event arrived)."""
        self.pickup_s: dict[int, float] = {}
        """Task id -> seconds from ``created_at`` to ``started_at``, the task's own stamps."""
        self.error: BaseException | None = None
        self._changed = threading.Condition()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="ws-watcher", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by start() / wait()
            self.error = exc
        finally:
            self._ready.set()
            with self._changed:
                self._changed.notify_all()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        conn = await asyncio.wait_for(
            tornado.websocket.websocket_connect(self.url), self.connect_timeout
        )
        try:
            hello = await asyncio.wait_for(conn.read_message(), self.connect_timeout)
            if hello is None or json.loads(hello).get("type") != "hello":
                raise RuntimeError(f"unexpected first message {hello!r}")
            self._ready.set()
            stopping = asyncio.ensure_future(self._stop.wait())
            while True:
                reading = asyncio.ensure_future(conn.read_message())
                await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not reading.done():
                    reading.cancel()
                    break
                message = reading.result()
                if message is None:
                    break
                self._note(message, time.perf_counter())
        finally:
            conn.close()  # and wait for the server's close frame, so no socket is left open
            with contextlib.suppress(Exception):
                while await asyncio.wait_for(conn.read_message(), 2.0) is not None:
                    pass

    def _note(self, message: str | bytes, when: float) -> None:
        event = json.loads(message)
        task = event.get("task") or {}
        status = task.get("status")
        with self._changed:
            if status in FINAL_STATUSES and task.get("id") not in self.final:
                self.final[int(task["id"])] = (status, when)
                self.pickup_s[int(task["id"])] = _seconds_between(
                    task.get("created_at"), task.get("started_at")
                )
                self._changed.notify_all()

    def start(self) -> None:
        """Connect and wait for the ``hello`` message.

        :raises RuntimeError: not connected within ``connect_timeout`` seconds.
        """
        self._thread.start()
        if not self._ready.wait(self.connect_timeout + 5) or self.error is not None:
            raise RuntimeError(f"WebSocket {self.url} did not connect: {self.error!r}")

    def wait(self, ids: Sequence[int], deadline: float) -> bool:
        """Wait until every task of ``ids`` has a final status, or ``deadline`` (monotonic).

        :returns: whether they all have one.
        """
        with self._changed:
            while True:
                if all(i in self.final for i in ids):
                    return True
                left = deadline - time.monotonic()
                if left <= 0 or self.error is not None or not self._thread.is_alive():
                    return False
                self._changed.wait(min(left, 0.5))

    def stop(self) -> None:
        """Close the connection and end the thread."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(stop.set)
        self._thread.join(10)


@dataclass
class Enqueued:
    """The outcome of the enqueueing: the tasks created and the requests' times."""

    ids: list[int] = field(default_factory=list)
    sent_at: dict[int, float] = field(default_factory=dict)
    """Task id -> ``time.perf_counter()`` just before its ``POST``."""
    request_s: list[float] = field(default_factory=list)
    started: float = math.inf
    finished: float = -math.inf
    errors: int = 0


def enqueue(port: int, count: int, clients: int, deadline: float) -> Enqueued:
    """``POST /api/tasks`` the trivial task ``count`` times over ``clients`` keep-alive
    connections (one thread each), until done or ``deadline`` (``time.monotonic()``).

    A non-201 answer or a broken connection counts as an error (the connection is
    made again).
    """
    out = Enqueued()
    lock = threading.Lock()
    issued = 0
    body = json.dumps(TRIVIAL_TASK).encode()
    headers = {"Content-Type": "application/json"}

    def client() -> None:
        nonlocal issued
        conn = http.client.HTTPConnection(HOST, port, timeout=10)
        try:
            while time.monotonic() < deadline:
                with lock:
                    if issued >= count:
                        return
                    issued += 1
                t0 = time.perf_counter()
                try:
                    conn.request("POST", "/api/tasks", body, headers)
                    resp = conn.getresponse()
                    data = resp.read()
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection(HOST, port, timeout=10)
                    with lock:
                        out.errors += 1
                    continue
                t1 = time.perf_counter()
                with lock:
                    out.started = min(out.started, t0)
                    out.finished = max(out.finished, t1)
                    if resp.status != 201:
                        out.errors += 1
                        continue
                    task_id = int(json.loads(data)["id"])
                    out.ids.append(task_id)
                    out.sent_at[task_id] = t0
                    out.request_s.append(t1 - t0)
        finally:
            conn.close()

    threads = [threading.Thread(target=client, name=f"enqueue-{i}") for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()) + 15)  # a request's timeout, at most
    with lock:
        out.errors += count - issued  # not sent before the deadline
    return out


def measure(
    port: int, *, tasks: int, clients: int, warmup_tasks: int, timeout: float
) -> tuple[dict[str, float], dict[int, str]]:
    """One round's metrics (:data:`benchmarks.tasks.METRICS`) against the server on ``port``,
    and the tasks created that did not succeed: id -> their final status, or ``"no final
    event"``.

    A WebSocket client connects first; ``warmup_tasks`` tasks are enqueued and
    awaited (not counted); then ``tasks`` tasks are enqueued over ``clients``
    connections and their events awaited, both within ``timeout`` seconds.

    :raises RuntimeError: the WebSocket did not connect, or the warm-up tasks were not
        all enqueued and reported final within ``timeout``.
    """
    watcher = EventWatcher(f"ws://{HOST}:{port}/ws/tasks")
    watcher.start()
    try:
        if warmup_tasks:
            warm = enqueue(port, warmup_tasks, clients, time.monotonic() + timeout)
            if warm.errors or not watcher.wait(warm.ids, time.monotonic() + timeout):
                raise RuntimeError(
                    f"warm-up: {len(warm.ids)} of {warmup_tasks} tasks enqueued, "
                    f"{sum(1 for i in warm.ids if i in watcher.final)} of them reported final "
                    f"on the WebSocket within {timeout:g} s"
                )
        deadline = time.monotonic() + timeout
        done = enqueue(port, tasks, clients, deadline)
        watcher.wait(done.ids, deadline)
    finally:
        watcher.stop()
    final = dict(watcher.final)
    succeeded = [i for i in done.ids if final.get(i, ("", 0.0))[0] == "succeeded"]
    latencies = [final[i][1] - done.sent_at[i] for i in succeeded]
    pickups = [p for i in succeeded if math.isfinite(p := watcher.pickup_s[i])]
    span = done.finished - done.started
    unsucceeded = {
        i: final[i][0] if i in final else "no final event"
        for i in done.ids
        if final.get(i, ("", 0.0))[0] != "succeeded"
    }
    values = {
        "enqueue_tps": len(done.ids) / span if span > 0 else float("nan"),
        "enqueue_p50_ms": percentile(done.request_s, 0.50) * 1000,
        "enqueue_p99_ms": percentile(done.request_s, 0.99) * 1000,
        "e2e_p50_ms": percentile(latencies, 0.50) * 1000,
        "e2e_p99_ms": percentile(latencies, 0.99) * 1000,
        "pickup_p50_ms": percentile(pickups, 0.50) * 1000,
        "pickup_p99_ms": percentile(pickups, 0.99) * 1000,
        "all_done_s": (
            max(final[i][1] for i in succeeded) - done.started
            if succeeded and len(succeeded) == tasks
            else float("nan")
        ),
        "completed": float(len(succeeded)),
        # refused requests, then tasks that failed or did not succeed within the timeout
        "errors": float(done.errors + len(done.ids) - len(succeeded)),
    }
    return values, unsucceeded
