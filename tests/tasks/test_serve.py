"""``manage.py serve`` as a real process, with the example's tasks running.

Stopping interrupts tasks; a task that never reports does not keep the process
alive; ``TASK_THREADS`` is checked at start-up; the task tables are part of the
migrations. The test-only task kind ``stuck`` comes from a ``sitecustomize``
module in a temporary directory on ``PYTHONPATH``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from config import PROJECT_ROOT
from tests.support.cli import ServerProcess, environment, run, sitecustomize_dir

# Registers the kind "stuck", which never calls report(): it cannot be stopped.
SITECUSTOMIZE = f"""
import sys
import threading

from pydantic import BaseModel

sys.path.insert(0, {str(PROJECT_ROOT)!r})  # as running manage.py does, a moment later

from app.tasks import kinds


class NoParams(BaseModel):
    pass


def run_stuck(params, report):
    threading.Event().wait()  # for ever, never reporting


kinds.KINDS["stuck"] = kinds.TaskKind("stuck", NoParams, run_stuck, "test only")
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A directory holding the test-only ``sitecustomize``."""
    return sitecustomize_dir(tmp_path, SITECUSTOMIZE)


def tasks_in(database_url: str) -> dict[int, tuple[str, str | None]]:
    """``{id: (status, error)}`` of every task, read straight from the database."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT id, status, error FROM tasks ORDER BY id"))
            return {row.id: (row.status, row.error) for row in rows}
    finally:
        engine.dispose()


INTERRUPTED = ("interrupted", "interrupted: the server stopped before the task finished")


def test_sigterm_stops_a_running_task_and_exits_0_within_the_timeout(
    migrated: str, servers: list[ServerProcess]
) -> None:
    env = environment(migrated, PORT="0", THREADS="2", SHUTDOWN_TIMEOUT="5")
    server = ServerProcess("--no-reload", env=env)
    servers.append(server)
    base = f"http://127.0.0.1:{server.port()}"
    for _ in range(2):  # TASK_THREADS is 1 with THREADS=2: the second one waits
        created = httpx.post(
            f"{base}/api/tasks", json={"kind": "sleep", "params": {"steps": 60, "delay": 1}}
        )
        assert created.status_code == 201, created.text
    deadline = time.monotonic() + 10
    while httpx.get(f"{base}/api/tasks/1").json()["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert httpx.get(f"{base}/api/tasks/2").json()["status"] == "queued"
    status, elapsed = server.stop(timeout=15)
    assert status == 0, server.log
    assert elapsed < 5 + 2, f"took {elapsed:.1f} s"
    assert "still busy" not in server.log
    assert tasks_in(migrated) == {1: INTERRUPTED, 2: INTERRUPTED}


def test_a_task_that_never_reports_does_not_keep_the_process_alive(
    migrated: str, site: Path, servers: list[ServerProcess]
) -> None:
    env = environment(migrated, site, PORT="0", THREADS="2", SHUTDOWN_TIMEOUT="1")
    server = ServerProcess("--no-reload", env=env)
    servers.append(server)
    base = f"http://127.0.0.1:{server.port()}"
    assert httpx.post(f"{base}/api/tasks", json={"kind": "stuck"}).status_code == 201
    deadline = time.monotonic() + 10
    while httpx.get(f"{base}/api/tasks/1").json()["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    status, elapsed = server.stop(timeout=15)
    assert status == 0, server.log
    assert elapsed < 1 + 4, f"took {elapsed:.1f} s"
    assert "1 worker thread(s) still busy after the 1 s shutdown timeout" in server.log
    assert re.search(r"\] stopped +\[hybrid\.server\]$", server.lines[-1])  # the log was flushed
    assert tasks_in(migrated) == {1: INTERRUPTED}


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        (
            {"THREADS": "4", "TASK_THREADS": "4"},
            "Error: invalid configuration: TASK_THREADS: must be below THREADS=4, so that "
            "requests keep a thread (got 4)",
        ),
        (
            {"THREADS": "1"},
            "Error: invalid configuration: TASK_THREADS: must be below THREADS=1, so that "
            "requests keep a thread (got 1)",
        ),
    ],
)
def test_start_up_errors_of_the_example_are_one_line(
    database_url: str, variables: dict[str, str], expected: str
) -> None:
    env = environment(database_url, PORT="0", **variables)
    result = run("serve", "--no-reload", env=env, timeout=30)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1] == expected


@pytest.mark.parametrize("app_env", ["production", "testing"])
def test_an_unmigrated_database_names_the_examples_branch(database_url: str, app_env: str) -> None:
    env = environment(database_url, PORT="0", APP_ENV=app_env)
    result = run("serve", "--no-reload", env=env, timeout=30)
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: the database is not migrated (no revision yet, head is "), last
    assert "tasks_0002" in last and last.endswith("run python manage.py db upgrade"), last


def test_development_serve_creates_the_task_tables_on_first_start(tmp_path: Path) -> None:
    """Development mode on a fresh SQLite file: the example's branch is migrated too."""
    database = tmp_path / "fresh" / "dev.db"
    env = environment(f"sqlite:///{database}", APP_ENV="development", PORT="0", THREADS="2")
    env["AUTORELOAD"] = "false"
    server = ServerProcess(env=env)
    try:
        tasks = httpx.get(f"http://127.0.0.1:{server.port()}/api/tasks")
        assert tasks.json() == {"tasks": []}
        assert server.stop(timeout=20)[0] == 0
    finally:
        server.close()
