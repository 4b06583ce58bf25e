"""The container's own limit on a shared executor: at most ``max_workers`` of its jobs.

A container given an executor larger than its ``max_workers`` keeps the rest of the
executor's threads free for other work (the service's native handlers): its jobs
beyond ``max_workers`` wait in the container's FIFO, not in the executor's queue where
other work would queue behind them.  No test races the clock: jobs and views wait on
Events the test releases.
"""

from __future__ import annotations

import functools
import operator
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from wsgi_bridge import WSGIContainer
from wsgi_bridge.lane import ExecutorLane
from wsgi_bridge.testing import BridgeServer, wait_for

WAIT = 10.0
"""Seconds any blocked job or view waits for its Event at most (a failing test's bound)."""


def never_called(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    raise AssertionError("the dispatch tests call no application")


def has_in_flight(server: BridgeServer, count: int) -> bool:
    """True when ``count`` requests are in flight in ``server``'s container."""
    return bool(server.call(lambda: server.container.in_flight) == count)


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(3, thread_name_prefix="lane-test")
    yield executor
    executor.shutdown(wait=True)


class Jobs:
    """Jobs that record their start order and block until released one by one."""

    def __init__(self, count: int) -> None:
        self.started: list[int] = []
        self.release = [threading.Event() for _ in range(count)]
        self._lock = threading.Lock()
        self.running = 0
        self.most_running = 0

    def job(self, index: int) -> None:
        with self._lock:
            self.started.append(index)
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            self.release[index].wait(WAIT)
        finally:
            with self._lock:
                self.running -= 1

    def release_all(self) -> None:
        for event in self.release:
            event.set()


def test_at_most_max_workers_jobs_are_in_a_shared_executor_in_fifo_order(
    pool: ThreadPoolExecutor,
) -> None:
    container = WSGIContainer(never_called, pool, max_workers=2)
    jobs = Jobs(6)
    try:
        for index in range(6):
            container.dispatch(functools.partial(jobs.job, index))
        assert wait_for(lambda: len(jobs.started) == 2)
        # The executor's third thread is free: other work is not queued behind the
        # container's four waiting jobs.
        assert pool.submit(lambda: "other work").result(timeout=WAIT) == "other work"
        assert jobs.started == [0, 1]
        # Each finished job hands the next waiting one over, in arrival order, even
        # when a later job finishes first.
        for finished, expected in ((1, [0, 1, 2]), (0, [0, 1, 2, 3]), (3, [0, 1, 2, 3, 4])):
            jobs.release[finished].set()
            assert wait_for(functools.partial(operator.eq, jobs.started, expected))
        jobs.release_all()
        assert wait_for(lambda: jobs.started == [0, 1, 2, 3, 4, 5] and jobs.running == 0)
        assert jobs.most_running == 2
    finally:
        jobs.release_all()


def test_a_job_that_raises_still_hands_its_slot_over(pool: ThreadPoolExecutor) -> None:
    container = WSGIContainer(never_called, pool, max_workers=1)
    done = threading.Event()

    def fails() -> None:
        raise RuntimeError("job failed on purpose")

    container.dispatch(fails)
    container.dispatch(done.set)
    assert done.wait(WAIT)


def test_jobs_waiting_at_shutdown_still_run(pool: ThreadPoolExecutor) -> None:
    """As jobs queued in the executor run after ``shutdown()``, so do the container's."""
    container = WSGIContainer(never_called, pool, max_workers=1)
    jobs = Jobs(3)
    try:
        for index in range(3):
            container.dispatch(functools.partial(jobs.job, index))
        assert wait_for(lambda: jobs.started == [0])
        stopping = threading.Thread(target=pool.shutdown, kwargs={"wait": True})
        stopping.start()
        jobs.release_all()
        stopping.join(WAIT)
        assert not stopping.is_alive()
        assert jobs.started == [0, 1, 2]
    finally:
        jobs.release_all()


def test_the_lane_holds_no_slot_once_every_job_ran(pool: ThreadPoolExecutor) -> None:
    """``active`` counts the lane's jobs in the executor: back to 0 (and ``backlog``
    empty) once all ran, whatever order they finished in."""
    lane = ExecutorLane(pool, 2)
    jobs = Jobs(5)
    try:
        for index in range(5):
            lane.submit(functools.partial(jobs.job, index))
        assert wait_for(lambda: len(jobs.started) == 2)
        assert (lane.active, lane.backlog) == (2, 3)
        for index in (1, 0, 2, 4, 3):
            jobs.release[index].set()
        assert wait_for(lambda: len(jobs.started) == 5 and jobs.running == 0)
        assert wait_for(lambda: (lane.active, lane.backlog) == (0, 0))
        assert jobs.most_running == 2
    finally:
        jobs.release_all()


def test_a_job_the_executor_refuses_takes_no_slot() -> None:
    """``submit`` on a shut-down executor raises ``RuntimeError`` and leaves the lane
    as it was (the container then answers 503)."""
    executor = ThreadPoolExecutor(1)
    executor.shutdown(wait=True)
    lane = ExecutorLane(executor, 2)
    for _ in range(3):
        with pytest.raises(RuntimeError):
            lane.submit(lambda: None)
        assert (lane.active, lane.backlog) == (0, 0)


def test_the_lane_limit_must_be_at_least_one(pool: ThreadPoolExecutor) -> None:
    with pytest.raises(ValueError, match=r"^limit must be >= 1, got 0$"):
        ExecutorLane(pool, 0)


def test_requests_beyond_max_workers_leave_the_rest_of_the_pool_free() -> None:
    """Over sockets: 2 of 3 threads for the bridge, 4 requests held; the third thread
    still serves other work at once, and every request completes afterwards."""
    gate = threading.Event()
    ran: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        ran.append(environ["PATH_INFO"])
        gate.wait(WAIT)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["PATH_INFO"].encode()]

    with BridgeServer(app, workers=3, max_workers=2) as server:
        connections = [server.http() for _ in range(4)]
        try:
            for index, connection in enumerate(connections):  # one after the other
                connection.request("GET", f"/held/{index}")
                assert wait_for(functools.partial(has_in_flight, server, index + 1))
            assert wait_for(lambda: len(ran) == 2)
            assert server.call(lambda: server.container.waiting) == 2
            assert server.executor is not None
            assert server.executor.submit(lambda: "free").result(timeout=WAIT) == "free"
            assert len(ran) == 2
            gate.set()
            bodies = [connection.getresponse().read() for connection in connections]
        finally:
            gate.set()
            for connection in connections:
                connection.close()
    assert bodies == [f"/held/{index}".encode() for index in range(4)]
    assert ran == [f"/held/{index}" for index in range(4)]


def test_an_abandoned_worker_keeps_its_slot_until_the_app_returns() -> None:
    """A 504 frees the admission slot, not the thread: the next request waits for it."""
    gate = threading.Event()
    ran: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        ran.append(environ["PATH_INFO"])
        if environ["PATH_INFO"] == "/slow":
            gate.wait(WAIT)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    with BridgeServer(app, workers=2, max_workers=1, request_timeout=1.0) as server:
        assert server.request("GET", "/slow")[0] == 504
        assert server.call(lambda: server.container.abandoned) == 1
        next_request = server.http()
        try:
            next_request.request("GET", "/next")
            assert wait_for(lambda: server.call(lambda: server.container.waiting) == 1)
            assert server.executor is not None
            assert server.executor.submit(lambda: "free").result(timeout=WAIT) == "free"
            assert ran == ["/slow"]  # the executor had a free thread; the slot was taken
            gate.set()
            status = next_request.getresponse().status
        finally:
            gate.set()
            next_request.close()
    assert ran[0] == "/slow"
    assert status in (200, 504)  # 504 when the slow app outlived /next's deadline too
