"""An in-memory SQLite database is refused by ``manage.py serve`` and ``worker``.

Each connection to ``sqlite://`` opens its own empty database, so the pool
shares one connection between all threads (``StaticPool``), which SQLite's
Python driver does not make safe: under concurrent requests writes were lost
and requests failed with ``ResourceClosedError``. A server or a worker refuses
it with one ``Error:`` line; in-process apps (tests) may still use it.
"""

from __future__ import annotations

import pytest

from app.database import sqlite_in_memory
from tests.support.cli import environment, run

EXPECTED = (
    "Error: DATABASE_URL: an in-memory SQLite database cannot be served: each "
    "connection opens its own empty database, or the threads share one connection, "
    "which is not safe; use a file, e.g. sqlite:///instance/app.db"
)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite:///file:db?mode=memory&uri=true",
        "sqlite:///file::memory:?uri=true",  # served silently as a file named ":memory:"
    ],
)
@pytest.mark.parametrize("app_env", ["development", "testing"])
def test_serve_refuses_an_in_memory_database(url: str, app_env: str) -> None:
    env = environment(url, PORT="0", APP_ENV=app_env)
    result = run("serve", "--no-reload", env=env, timeout=30)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [EXPECTED], result.stderr


def test_worker_refuses_an_in_memory_database() -> None:
    result = run("worker", env=environment("sqlite://"), timeout=30)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [EXPECTED], result.stderr


@pytest.mark.parametrize(
    ("url", "in_memory"),
    [
        ("sqlite:///file::memory:?uri=true", True),
        ("sqlite:///file::memory:?cache=shared&uri=true", True),
        ("sqlite:///file:memory.db?uri=true", False),
        ("sqlite:///instance/app.db", False),
        ("postgresql+psycopg://postgres@127.0.0.1/test", False),
    ],
)
def test_which_urls_are_in_memory(url: str, in_memory: bool) -> None:
    assert sqlite_in_memory(url) is in_memory
