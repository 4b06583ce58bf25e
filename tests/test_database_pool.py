"""The database under failure and under load, on a running server (real sockets).

* A database restart or failover (the server's PostgreSQL connections
  terminated) costs no failed request, on either side: connections are
  pinged when taken from the pool (``pool_pre_ping``), and a unit of work
  whose connection turns out dead before any statement ran is retried once.
* The pool holds as many connections as the server has worker threads, so
  16 database jobs at once, at the default ``THREADS``, all get one.

Two test-only endpoints run one short unit of work each: a Flask view
(``/_test/db``, Flask-SQLAlchemy's ``db.session``) and a native handler
(``/_test/v2/db``, ``run_in_session`` on the shared executor). With
``?hold=1`` each holds its connection until every other job holds one
(a :class:`threading.Barrier`), so the concurrency is real, not timed.

The restart test needs PostgreSQL (``TEST_DATABASE_URL``); the pool test runs
on SQLite (whose file databases also get a ``QueuePool``) and PostgreSQL.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from flask import Flask, request
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.pool import QueuePool, StaticPool

from app import create_app
from app.auth.models import User
from app.database import call_in_session
from app.extensions import db
from config import Settings
from tests.support.routes import add_native_route, with_views
from tests.support.server import LiveServer, ServerFactory
from tornado_handlers.base import BaseHandler

PATHS = {"flask": "/_test/db", "native": "/_test/v2/db"}

DEFAULT_THREADS: int = Settings.model_fields["threads"].default
"""``THREADS`` when unset: how many database jobs may run at once by default."""

HOLD_TIMEOUT = 15.0
"""Seconds a job holding a connection waits for the others (shorter than the pool's 30 s)."""


def count_users(session: Session, barrier: threading.Barrier | None) -> int:
    """A unit of work: count the users; with ``barrier``, hold the connection until all do."""
    count = session.scalar(select(func.count()).select_from(User)) or 0
    if barrier is not None:
        barrier.wait(HOLD_TIMEOUT)  # the session's transaction holds its connection meanwhile
    return count


def serve_database_jobs(
    live_server: ServerFactory, barrier: threading.Barrier | None = None, **overrides: Any
) -> LiveServer:
    """Start the server with both test-only endpoints (:data:`PATHS`).

    :param barrier: what ``?hold=1`` jobs wait on, holding their connection.
    :param overrides: settings of the server.
    """

    def add_view(app: Flask) -> None:
        @app.get(PATHS["flask"])
        def database_job() -> dict[str, int]:
            hold = barrier if request.args.get("hold") else None
            return {"users": count_users(db.session(), hold)}

    class DatabaseJob(BaseHandler):
        async def get(self) -> None:
            hold = barrier if self.get_query_argument("hold", "") else None
            users = await self.run_in_session(lambda session: count_users(session, hold))
            self.write_json({"users": users})

    server = live_server(create_flask_app=with_views(add_view), **overrides)
    add_native_route(server.hybrid, PATHS["native"], DatabaseJob)
    return server


def get_all(server: LiveServer, rounds: int) -> list[int]:
    """``rounds`` requests to each endpoint, in turn; return the statuses."""
    statuses = []
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for _ in range(rounds):
            for path in PATHS.values():
                statuses.append(client.get(path).status_code)
    return statuses


@pytest.fixture
def postgres_url(database_url: str) -> Iterator[str]:
    """This test's PostgreSQL database, its connections tagged (``application_name``).

    The tag lets the test terminate its server's connections only: other test
    runs may share the PostgreSQL server.
    """
    if not database_url.startswith("postgresql"):
        pytest.skip("terminating connections needs PostgreSQL: set TEST_DATABASE_URL")
    tag = f"test_restart_{uuid.uuid4().hex[:12]}"
    yield (
        make_url(database_url)
        .update_query_dict({"application_name": tag})
        .render_as_string(hide_password=False)
    )


def terminate_backends(url: str) -> int:
    """Terminate the connections tagged as ``url``'s, as a restart does; return how many."""
    tag = make_url(url).query["application_name"]
    admin = create_engine(os.environ["TEST_DATABASE_URL"], isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            terminated = connection.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND application_name = :tag"
                ),
                {"tag": tag},
            ).scalar_one()
    finally:
        admin.dispose()
    return int(terminated)


def test_a_database_restart_costs_no_failed_request(
    live_server: ServerFactory, postgres_url: str
) -> None:
    server = serve_database_jobs(live_server, database_url=postgres_url)
    assert get_all(server, rounds=3) == [200] * 6  # both sides hold pooled connections now
    for _ in range(3):  # the first drop, then again after each one
        assert terminate_backends(postgres_url) >= 1
        assert get_all(server, rounds=3) == [200] * 6


def test_a_unit_of_work_whose_first_statement_finds_the_connection_dead_runs_again(
    flask_app: Flask, postgres_url: str
) -> None:
    calls: list[int] = []

    def work(session: Session) -> int:
        calls.append(len(calls))
        if len(calls) == 1:  # the connection dies on the first statement, as in a failover
            session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        return int(session.scalar(select(func.count()).select_from(User)) or 0)

    assert call_in_session(flask_app, work) == 0
    assert calls == [0, 1]


def test_a_disconnect_after_work_started_is_not_retried(
    flask_app: Flask, postgres_url: str
) -> None:
    calls: list[int] = []

    def work(session: Session) -> None:
        calls.append(len(calls))
        session.add(User(email="ada@example.com", password_hash="-"))
        session.flush()  # done: the work may not run twice
        session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))

    with pytest.raises(OperationalError) as raised:
        call_in_session(flask_app, work)
    assert raised.value.connection_invalidated
    assert calls == [0]
    assert call_in_session(flask_app, lambda s: s.scalar(select(func.count(User.id)))) == 0


def test_as_many_database_jobs_at_once_as_threads(live_server: ServerFactory) -> None:
    barrier = threading.Barrier(DEFAULT_THREADS)
    server = serve_database_jobs(live_server, barrier, threads=DEFAULT_THREADS)
    # Half on each side: both take their connections from the one pool.
    paths = [PATHS["flask"], PATHS["native"]] * (DEFAULT_THREADS // 2)

    def hold(path: str) -> int:
        with httpx.Client(base_url=server.url, timeout=HOLD_TIMEOUT + 15) as client:
            return client.get(path, params={"hold": "1"}).status_code

    with ThreadPoolExecutor(len(paths)) as clients:
        statuses = list(clients.map(hold, paths))
    assert statuses == [200] * DEFAULT_THREADS
    assert not barrier.broken


def test_the_pool_has_a_connection_per_worker_thread(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"threads": 24}))
    with app.app_context():
        pool = db.engine.pool
        assert isinstance(pool, QueuePool)  # SQLite files too, and PostgreSQL
        assert pool.size() == 24
        db.engine.dispose()


def test_an_in_memory_database_keeps_its_one_shared_connection(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"database_url": "sqlite://"}))
    with app.app_context():
        assert isinstance(db.engine.pool, StaticPool)
        assert db.session.scalar(text("SELECT 1")) == 1
        db.session.remove()
        db.engine.dispose()
