"""Fixtures shared by the whole suite.

* every test runs with the service's environment variables removed (those of
  ``Settings`` and of the settings models of the features in use) and in an
  empty working directory, so neither the developer's shell nor a ``.env``
  leaks in;
* ``database_url`` -- a fresh, migrated database per test: a SQLite file in
  ``tmp_path``, or, when ``TEST_DATABASE_URL`` names PostgreSQL, a schema of
  its own in that database, dropped afterwards;
* ``settings``, ``executor``, ``flask_app``, ``testapp`` (WebTest), ``hybrid``
  (built, not serving);
* ``live_server`` -- the real hybrid server on a random port, in a thread;
* ``migrated`` (this test's database, migrated by ``manage.py db upgrade``)
  and ``servers`` (``manage.py serve`` processes, killed after the test);
* ``redis_server`` -- a private ``redis-server`` on a free port
  (:mod:`tests.support.redis`, registered through ``pytest_plugins``).

Helpers that tests import live in ``tests/support/``; tests never import this file.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import webtest
from flask import Flask
from pydantic_settings import BaseSettings
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app import create_app
from app.schema_migrations import upgrade_database
from config import Settings, load_settings
from server.build import FlaskFactory, Hybrid, build_hybrid
from server.features import FEATURES
from tests.support.cli import ServerProcess, environment, run
from tests.support.server import TEST_SECRET_KEY, LiveServer, ServerFactory, ServerThread

pytest_plugins = ["tests.support.redis"]
"""Fixtures that live with their helpers in ``tests/support/``: ``redis_server``."""

SETTINGS_MODELS: list[type[BaseSettings]] = [Settings, *(m for f in FEATURES for m in f.settings)]
"""The settings models whose environment variables every test runs without."""


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for model in SETTINGS_MODELS:
        for name in model.model_fields:
            monkeypatch.delenv(name.upper(), raising=False)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)


def _postgres_schema_url(base_url: str) -> tuple[str, Callable[[], None]]:
    """Create a schema of its own for one test; return its URL and a cleanup."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return url.render_as_string(hide_password=False), drop


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """A fresh empty database for this test (migrated by the app fixtures)."""
    base = os.environ.get("TEST_DATABASE_URL")
    if base and not base.startswith("sqlite"):
        url, drop = _postgres_schema_url(base)
        try:
            yield url
        finally:
            drop()
    else:
        yield f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Testing settings on this test's database, four worker threads."""
    return load_settings(
        app_env="testing",
        database_url=database_url,
        secret_key=TEST_SECRET_KEY,
        threads=4,
        host="127.0.0.1",
        port=0,
        shutdown_timeout=5,
    )


@pytest.fixture
def executor(settings: Settings) -> Iterator[ThreadPoolExecutor]:
    """A shared thread pool like the server's, shut down after the test."""
    pool = ThreadPoolExecutor(settings.threads, thread_name_prefix="test-worker")
    yield pool
    pool.shutdown(wait=True, cancel_futures=True)


def _dispose(flask_app: Flask) -> None:
    from app.extensions import db

    with flask_app.app_context():
        db.engine.dispose()


@pytest.fixture
def flask_app(settings: Settings, executor: ThreadPoolExecutor) -> Iterator[Flask]:
    """The service's Flask app (every feature) on a migrated database, as the server builds it."""
    app = build_hybrid(settings, executor=executor).flask_app
    upgrade_database(app)
    yield app
    executor.shutdown(wait=True)
    _dispose(app)


@pytest.fixture
def hybrid(settings: Settings) -> Iterator[Hybrid]:
    """The hybrid as ``manage.py routes`` builds it: every feature, nothing listening."""
    built = build_hybrid(settings)
    yield built
    built.close()
    _dispose(built.flask_app)


@pytest.fixture
def testapp(flask_app: Flask) -> webtest.TestApp:
    """WebTest's ``TestApp`` around the Flask app (WSGI level, no sockets)."""
    return webtest.TestApp(flask_app)


@pytest.fixture
def live_server(settings: Settings) -> Iterator[ServerFactory]:
    """Start the hybrid server in a background thread; call it to get one.

    ``live_server(create_flask_app=factory, **settings_overrides)``: ``factory``
    is called with ``(settings, executor, features)`` and returns the Flask app
    (use it to add test-only views). The server is stopped (gracefully) after the test,
    and the test fails (an error at teardown) when its server raised on its thread (the
    original exception, re-raised), its drain timed out, or an admission slot leaked
    (:class:`~tests.support.server.ServerThread`).
    """
    with contextlib.ExitStack() as stopping:

        def start(create_flask_app: FlaskFactory = create_app, **overrides: Any) -> LiveServer:
            server_settings = settings.model_copy(update=overrides) if overrides else settings
            hybrid = build_hybrid(server_settings, create_flask_app)
            # Served as in production: Flask's own error handlers answer a failing
            # view (TESTING would make Flask re-raise into the server instead).
            hybrid.flask_app.config["PROPAGATE_EXCEPTIONS"] = False
            upgrade_database(hybrid.flask_app)
            # Last in, first out: after the server stopped and passed its checks,
            # its threads and database connections are let go (even if it failed them).
            stopping.callback(_dispose, hybrid.flask_app)
            stopping.callback(hybrid.executor.shutdown, wait=True)
            thread = ServerThread(server_settings, hybrid)
            server = thread.start()
            stopping.callback(thread.finish)
            return server

        yield start


@pytest.fixture
def migrated(database_url: str) -> str:
    """This test's database, migrated by ``manage.py db upgrade``."""
    upgraded = run("db", "upgrade", env=environment(database_url))
    assert upgraded.returncode == 0, upgraded.stderr
    return database_url


@pytest.fixture
def servers() -> Iterator[list[ServerProcess]]:
    """``manage.py serve`` processes a test starts (append them); killed afterwards if running."""
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.close()
