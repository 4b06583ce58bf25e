"""``manage.py serve`` as a real process: how it starts, fails to start, reloads and stops.

Test-only task kinds and autoreload's watched file come from a
``sitecustomize`` module in a temporary directory on ``PYTHONPATH``: Python
imports it at start-up, so the command run is exactly the one a user types.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from config import PROJECT_ROOT
from tests.support.cli import SERVING, ServerProcess, environment, run

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
    directory = tmp_path / "site"
    directory.mkdir()
    (directory / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return directory


@pytest.fixture
def migrated(database_url: str) -> str:
    """This test's database, migrated by ``manage.py db upgrade``."""
    upgraded = run("db", "upgrade", env=environment(database_url))
    assert upgraded.returncode == 0, upgraded.stderr
    return database_url


@pytest.fixture
def servers() -> Iterator[list[ServerProcess]]:
    """Processes started by a test; killed afterwards if still running."""
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.close()


def tasks_in(database_url: str) -> dict[int, tuple[str, str | None]]:
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
    assert server.lines[-1].endswith("hybrid.server: stopped")  # the log was flushed
    assert tasks_in(migrated) == {1: INTERRUPTED}


def test_reload_restarts_the_server_when_a_watched_file_changes(
    tmp_path: Path, site: Path, servers: list[ServerProcess]
) -> None:
    database = tmp_path / "dev.db"
    env = environment(f"sqlite:///{database}", site, APP_ENV="development", PORT="0")
    server = ServerProcess("--reload", env=env)
    servers.append(server)
    first = server.port()
    assert httpx.get(f"http://127.0.0.1:{first}/healthz").status_code == 200
    # The reloader records each module's mtime on its first check, 0.5 s after
    # start, and restarts when one differs: move the mtime on until it does.
    watched = site / "sitecustomize.py"
    deadline = time.monotonic() + 30
    mtime = watched.stat().st_mtime
    while len(SERVING.findall(server.log)) < 2:
        assert time.monotonic() < deadline, "no restart; log:\n" + server.log
        mtime += 1
        os.utime(watched, (mtime, mtime))
        time.sleep(0.3)
    second = server.port(count=2)
    assert "sitecustomize.py modified; restarting server" in server.log
    assert httpx.get(f"http://127.0.0.1:{second}/healthz").status_code == 200
    status, _ = server.stop(timeout=15)
    assert status == 0, server.log


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port some other socket listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        (
            {"DATABASE_URL": "foo://bar"},
            "Error: invalid configuration: DATABASE_URL: unknown database dialect 'foo' "
            "(expected e.g. sqlite or postgresql+psycopg) (got 'foo://bar')",
        ),
        (
            {"DATABASE_URL": ""},
            "Error: invalid configuration: DATABASE_URL: must be a SQLAlchemy URL, e.g. "
            "sqlite:///path/to/file.db or postgresql+psycopg://user@host/db (got '')",
        ),
        (
            {"DATABASE_URL": "postgresql+psycopg2://user:hunter2@127.0.0.1/db"},
            "Error: invalid configuration: DATABASE_URL: the driver for 'postgresql+psycopg2' "
            "is not installed (No module named 'psycopg2') "
            "(got 'postgresql+psycopg2://user:***@127.0.0.1/db')",
        ),
        (
            {"MAX_BODY_SIZE": "0"},
            "Error: invalid configuration: MAX_BODY_SIZE: Input should be greater than or "
            "equal to 1 (got '0')",
        ),
        (
            {"THREADS": "4", "TASK_THREADS": "5"},
            "Error: invalid configuration: TASK_THREADS: must be at most THREADS=4 (got 5)",
        ),
        (
            {"APP_ENV": "production"},
            "Error: the database is not migrated (at revision None, head is 0001, tasks_0001): "
            "run python manage.py db upgrade",
        ),
        (
            {"APP_ENV": "testing"},
            "Error: the database is not migrated (at revision None, head is 0001, tasks_0001): "
            "run python manage.py db upgrade",
        ),
    ],
)
def test_start_up_errors_are_one_line(
    database_url: str, variables: dict[str, str], expected: str
) -> None:
    env = environment(database_url, PORT="0", **variables)
    result = run("serve", "--no-reload", env=env, timeout=30)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: ")
    assert "hunter2" not in result.stderr
    assert last == expected


def test_address_errors_are_one_line_naming_the_variables(migrated: str, busy_port: int) -> None:
    in_use = run("serve", "--no-reload", env=environment(migrated, PORT=str(busy_port)))
    assert in_use.returncode == 1, in_use.stderr
    assert in_use.stderr.strip().splitlines() == [
        f"Error: cannot listen on 127.0.0.1:{busy_port}: address already in use (set PORT or HOST)"
    ]
    bad_host = run("serve", "--no-reload", env=environment(migrated, HOST="999.1.1.1", PORT="0"))
    assert bad_host.returncode == 1, bad_host.stderr
    assert re.fullmatch(
        r"Error: cannot listen on 999\.1\.1\.1:0: HOST '999\.1\.1\.1' is not an IP address "
        r"or a known host name \(.+; set HOST\)",
        bad_host.stderr.strip(),
    ), bad_host.stderr
