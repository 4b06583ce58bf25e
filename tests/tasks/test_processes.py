"""Task leases with ``manage.py serve --processes 2``: one process's start-up recovery
leaves another's running task alone, and a task whose process was SIGKILLed is
recorded ``interrupted`` by the survivor's periodic sweep.

``TASK_HEARTBEAT_INTERVAL=0.5`` makes a lease stale after 1.5 s, so the sweep
acts within seconds.
"""

from __future__ import annotations

import re

import httpx
import psutil
from sqlalchemy import create_engine, text

from tests.support.cli import ServerProcess, environment
from wsgi_bridge.testing import wait_for

STARTED_CHILD = re.compile(r"started process \d+ \(pid (\d+)\)")


def task_row(database_url: str, task_id: int) -> tuple[str, str | None]:
    """``(status, runner_id)`` of one task, read straight from the database."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            row = connection.execute(
                text("SELECT status, runner_id FROM tasks WHERE id = :id"), {"id": task_id}
            ).one()
            return row.status, row.runner_id
    finally:
        engine.dispose()


def runner_pid(database_url: str, task_id: int) -> int:
    """The pid of the process running ``task_id`` once it runs (``host:pid:hex`` lease)."""
    assert wait_for(lambda: task_row(database_url, task_id)[0] == "running", 10)
    runner_id = task_row(database_url, task_id)[1]
    assert runner_id is not None
    return int(runner_id.split(":")[-2])


def test_leases_hold_across_processes_and_a_killed_process_s_task_is_recovered(
    migrated: str, servers: list[ServerProcess]
) -> None:
    env = environment(
        migrated, PORT="0", THREADS="4", SHUTDOWN_TIMEOUT="5", TASK_HEARTBEAT_INTERVAL="0.5"
    )
    server = ServerProcess("--no-reload", "--processes", "2", env=env)
    servers.append(server)
    base = f"http://127.0.0.1:{server.port()}"
    server.port(2)

    def create(steps: int, delay: float) -> int:
        created = httpx.post(
            f"{base}/api/tasks",
            json={"kind": "sleep", "params": {"steps": steps, "delay": delay}},
            timeout=5,
        )
        assert created.status_code == 201, created.text
        task_id: int = created.json()["id"]
        return task_id

    # A task running in one process outlives the other's restart and start-up recovery.
    survivor_task = create(steps=40, delay=0.1)
    owner = runner_pid(migrated, survivor_task)
    other = next(child.pid for child in psutil.Process(server.process.pid).children())
    if other == owner:
        other = next(c.pid for c in psutil.Process(server.process.pid).children() if c.pid != owner)
    psutil.Process(other).kill()
    server.port(3)  # the replacement has run its start-up recovery and serves
    assert wait_for(lambda: task_row(migrated, survivor_task)[0] != "running", 15)
    assert task_row(migrated, survivor_task)[0] == "succeeded"

    # A task whose process is killed is recorded interrupted by another process's sweep.
    lost_task = create(steps=600, delay=0.1)
    victim = runner_pid(migrated, lost_task)
    psutil.Process(victim).kill()
    assert wait_for(lambda: task_row(migrated, lost_task)[0] == "interrupted", 15), server.log
    status, _ = server.stop(20)
    assert status == 0, server.log
