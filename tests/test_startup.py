"""``manage.py serve`` as a real process: how it starts, fails to start, reloads and stops.

A test-only Flask view that never returns (``/_test/stuck``) and autoreload's
watched file come from a ``sitecustomize`` module in a temporary directory on
``PYTHONPATH``: Python imports it at start-up, so the command run is exactly the
one a user types.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.schema_migrations import head_revisions
from config import PROJECT_ROOT, Settings
from server.build import build_hybrid
from tests.support.cli import SERVING, ServerProcess, environment, run, sitecustomize_dir

# Adds GET /_test/stuck, a view that never returns, to every app create_app makes.
SITECUSTOMIZE = f"""
import sys
import threading

sys.path.insert(0, {str(PROJECT_ROOT)!r})  # as running manage.py does, a moment later

import app

_create_app = app.create_app


def create_app(*args, **kwargs):
    flask_app = _create_app(*args, **kwargs)

    def stuck():
        threading.Event().wait()  # for ever
        return ""

    flask_app.add_url_rule("/_test/stuck", "test_stuck", stuck)
    return flask_app


app.create_app = create_app  # before server.build imports it
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A directory holding the test-only ``sitecustomize``."""
    return sitecustomize_dir(tmp_path, SITECUSTOMIZE)


@pytest.fixture
def heads(settings: Settings) -> str:
    """The head revisions the start-up check expects: the skeleton's and each feature's."""
    built = build_hybrid(settings)
    try:
        revisions = sorted(head_revisions(built.flask_app))
    finally:
        built.close()
    assert "0001" in revisions  # the skeleton's own branch
    return ", ".join(revisions)


def in_flight(base: str) -> int:
    """Bridged requests running or queued, as ``/healthz`` reports them."""
    count: int = httpx.get(f"{base}/healthz", timeout=5).json()["wsgi"]["in_flight"]
    return count


def test_a_view_that_never_returns_does_not_keep_the_process_alive(
    migrated: str, site: Path, servers: list[ServerProcess]
) -> None:
    env = environment(migrated, site, PORT="0", THREADS="2", SHUTDOWN_TIMEOUT="1")
    server = ServerProcess("--no-reload", env=env)
    servers.append(server)
    base = f"http://127.0.0.1:{server.port()}"
    answers: list[object] = []

    def request_stuck() -> None:
        try:
            answers.append(httpx.get(f"{base}/_test/stuck", timeout=30).status_code)
        except httpx.HTTPError as error:  # the server closes the connection on its way out
            answers.append(type(error).__name__)

    client = threading.Thread(target=request_stuck, daemon=True)
    client.start()
    deadline = time.monotonic() + 10
    while in_flight(base) != 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    status, elapsed = server.stop(timeout=15)
    assert status == 0, server.log
    assert elapsed < 1 + 4, f"took {elapsed:.1f} s"
    assert "1 worker thread(s) still busy after the 1 s shutdown timeout" in server.log
    assert re.search(r"\] stopped +\[hybrid\.server\]$", server.lines[-1])  # the log was flushed
    client.join(10)
    assert answers and answers != [200], answers  # the view never answered


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
            {"APP_ENV": "production"},
            "Error: the database is not migrated (no revision yet, head is {heads}): "
            "run python manage.py db upgrade",
        ),
        (
            {"APP_ENV": "testing"},
            "Error: the database is not migrated (no revision yet, head is {heads}): "
            "run python manage.py db upgrade",
        ),
    ],
)
def test_start_up_errors_are_one_line(
    database_url: str, heads: str, variables: dict[str, str], expected: str
) -> None:
    env = environment(database_url, PORT="0", **variables)
    result = run("serve", "--no-reload", env=env, timeout=30)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: ")
    assert "hunter2" not in result.stderr
    assert last == expected.replace("{heads}", heads)


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


@pytest.mark.parametrize("fresh", [False, True], ids=["migrated", "fresh-sqlite"])
def test_a_busy_port_in_development_is_the_only_line(
    migrated: str, busy_port: int, tmp_path: Path, fresh: bool
) -> None:
    # Development migrates before serving: the address is checked first, so
    # Alembic logs nothing (and migrates nothing) before the one Error line.
    database = f"sqlite:///{tmp_path / 'fresh' / 'dev.db'}" if fresh else migrated
    env = environment(database, PORT=str(busy_port), APP_ENV="development")
    result = run("serve", "--no-reload", env=env)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"Error: cannot listen on 127.0.0.1:{busy_port}: address already in use (set PORT or HOST)"
    ]
    assert not (tmp_path / "fresh" / "dev.db").exists()


def test_a_refused_start_leaves_no_database_file(tmp_path: Path, heads: str) -> None:
    database = tmp_path / "instance" / "production.db"
    env = environment(f"sqlite:///{database}", PORT="0", APP_ENV="production")
    result = run("serve", "--no-reload", env=env, timeout=30)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: the database is not migrated (no revision yet, head is {heads}): "
        "run python manage.py db upgrade"
    )
    assert not database.exists()


def test_pages_link_a_favicon_that_is_served(migrated: str, servers: list[ServerProcess]) -> None:
    server = ServerProcess("--no-reload", env=environment(migrated, PORT="0"))
    servers.append(server)
    base = f"http://127.0.0.1:{server.port()}"
    page = httpx.get(f"{base}/", timeout=10)
    assert '<link rel="icon" href="/favicon.ico"' in page.text
    icon = httpx.get(f"{base}/favicon.ico", timeout=10)
    assert icon.status_code == 200
    assert icon.headers["content-type"] == "image/vnd.microsoft.icon"
    assert icon.content.startswith(b"\x00\x00\x01\x00")  # an ICO header (one image follows)
    server.wait_for_line(re.compile(r"path=/favicon\.ico .*status=(200)"))  # the access log
    assert "status=404" not in server.log, server.log
