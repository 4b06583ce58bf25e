"""One data layer for both sides: migrations, sessions, integrity, bad input.

On the skeleton's own table (``users``) and whatever ``Base.metadata`` holds.
Writes from both sides go through two test-only endpoints that create users:
a Flask view (``POST /api/_test/users``) and a native handler
(``POST /api/_test/v2/users``), sharing one input model and one insert.

Runs on SQLite by default and on PostgreSQL when ``TEST_DATABASE_URL`` is set.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

import flask
import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask, abort, request
from flask_migrate import downgrade, upgrade
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.auth.models import User
from app.database import AnySession, Base, call_in_session
from app.extensions import csrf, db
from app.validation import parse
from tests.support.routes import add_native_route, with_views
from tests.support.server import LiveServer, ServerFactory
from tornado_handlers.base import BaseHandler

USER_PATHS = {"flask": "/api/_test/users", "native": "/api/_test/v2/users"}


class NewUsers(BaseModel):
    """Test-only input of both endpoints: ``{"emails": ["ada@example.com", ...]}``."""

    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)

    emails: list[Annotated[str, Field(min_length=1, max_length=254)]] = Field(
        min_length=1, max_length=10
    )


def insert_users(session: AnySession, emails: list[str]) -> list[int]:
    """Add one user per email, flushing each, so the first rows exist when a later one fails.

    :returns: the new ids, in order.
    """
    ids = []
    for email in emails:
        user = User(email=email, password_hash="-")
        session.add(user)
        session.flush()
        ids.append(user.id)
    return ids


def add_users_view(app: Flask) -> None:
    """The Flask endpoint: ``POST /api/_test/users``, 201 ``{"ids": [...]}``."""

    @app.post(USER_PATHS["flask"])
    @csrf.exempt
    def create_users() -> tuple[dict[str, Any], int]:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            abort(400, description="the body must be a JSON object")
        ids = insert_users(db.session, parse(NewUsers, body).emails)
        db.session.commit()
        return {"ids": ids}, 201


class UsersHandler(BaseHandler):
    """The native endpoint: ``POST`` as the Flask view; ``GET`` lists ``{"emails": [...]}``."""

    async def get(self) -> None:
        """Every user's email, oldest first."""
        emails = await self.run_in_session(
            lambda session: list(session.scalars(select(User.email).order_by(User.id)))
        )
        self.write_json({"emails": emails})

    async def post(self) -> None:
        """Create the users of the body, in one transaction."""
        emails = parse(NewUsers, self.json_body()).emails
        ids = await self.run_in_session(lambda session: insert_users(session, emails))
        self.write_json({"ids": ids}, 201)


def serve_users(live_server: ServerFactory, **overrides: Any) -> LiveServer:
    """Start the server with both test-only endpoints (:data:`USER_PATHS`)."""
    server = live_server(create_flask_app=with_views(add_users_view), **overrides)
    add_native_route(server.hybrid, USER_PATHS["native"], UsersHandler)
    return server


def emails(flask_app: Flask) -> list[str]:
    """Every user's email in the database, oldest first."""
    return call_in_session(
        flask_app, lambda session: list(session.scalars(select(User.email).order_by(User.id)))
    )


def make_user(flask_app: Flask, email: str = "ada@example.com") -> int:
    """Insert a user; return its id."""
    return call_in_session(flask_app, lambda session: insert_users(session, [email])[0])


def test_models_and_migrations_agree(flask_app: Flask) -> None:
    with flask_app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_upgrade_downgrade_upgrade(flask_app: Flask) -> None:
    with flask_app.app_context():
        tables = set(inspect(db.engine).get_table_names())
        assert {"users", "alembic_version"} <= tables
        assert set(Base.metadata.tables) <= tables  # every model's table is migrated
        downgrade(revision="base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        upgrade(revision="heads")
        assert set(inspect(db.engine).get_table_names()) == tables
    assert make_user(flask_app) == 1


def test_foreign_keys_are_enforced(flask_app: Flask) -> None:
    """On a test-only table referring to ``users`` (created in this test's database)."""

    def create(session: Session) -> None:
        session.execute(
            text(
                "CREATE TABLE test_notes (id INTEGER PRIMARY KEY, "
                "user_id INTEGER NOT NULL REFERENCES users (id))"
            )
        )

    call_in_session(flask_app, create)
    make_user(flask_app)

    def note(note_id: int, user_id: int) -> None:
        call_in_session(
            flask_app,
            lambda session: session.execute(
                text("INSERT INTO test_notes (id, user_id) VALUES (:id, :user_id)"),
                {"id": note_id, "user_id": user_id},
            ),
        )

    note(1, user_id=1)  # the same insert succeeds for a user that exists
    with pytest.raises(IntegrityError):
        note(2, user_id=12345)


def test_sqlite_connections_are_configured_for_threads(flask_app: Flask) -> None:
    with flask_app.app_context():
        if db.engine.dialect.name != "sqlite":
            pytest.skip("SQLite pragmas; this run uses PostgreSQL")
        with db.engine.connect() as connection:
            pragma = lambda name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
            assert pragma("journal_mode") == "wal"
            assert pragma("foreign_keys") == 1
            assert pragma("busy_timeout") == 5000


def test_call_in_session_rolls_back_and_cleans_up(flask_app: Flask) -> None:
    def half_then_fail(session: Session) -> None:
        insert_users(session, ["first@example.com"])
        raise RuntimeError("second half failed")

    with pytest.raises(RuntimeError, match="second half failed"):
        call_in_session(flask_app, half_then_fail)
    assert emails(flask_app) == []
    assert not flask.has_app_context()  # the pushed context was popped


def test_concurrent_writes_from_both_sides_are_exact(
    live_server: ServerFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    # Exactness under contention, not overload: admission must not shed (a loaded CI
    # machine made the queue stand for 0.5 s and 503 some writes), so CoDel gets 60 s.
    server = serve_users(live_server, threads=8, queue_target=60, queue_interval=60)
    requests = [USER_PATHS["flask" if i % 2 else "native"] for i in range(200)]

    # One client per thread: a sync httpx client shared by 32 threads races on its
    # connection pool (a CI run saw "[Errno 9] Bad file descriptor" on the client side).
    local = threading.local()
    clients: list[httpx.Client] = []

    def post(index_path: tuple[int, str]) -> int:
        index, path = index_path
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=server.url, timeout=30)
            clients.append(local.client)
        return local.client.post(path, json={"emails": [f"user{index}@example.com"]}).status_code

    try:
        with ThreadPoolExecutor(32) as pool:
            statuses = list(pool.map(post, enumerate(requests)))
    finally:
        for client in clients:
            client.close()
    listed = httpx.get(f"{server.url}{USER_PATHS['native']}", timeout=30).json()["emails"]

    assert statuses == [201] * 200
    rows = call_in_session(
        server.hybrid.flask_app, lambda session: session.scalar(select(func.count(User.id)))
    )
    with capsys.disabled():
        backend = server.hybrid.settings.database_url.split(":")[0]
        print(f"\n  200 concurrent writes (100 Flask, 100 native) on {backend}: rows={rows}")
    assert rows == 200
    assert sorted(listed) == sorted(f"user{i}@example.com" for i in range(200))


@pytest.mark.parametrize("side", ["flask", "native"])
def test_a_failing_write_leaves_no_partial_data(live_server: ServerFactory, side: str) -> None:
    server = serve_users(live_server)
    make_user(server.hybrid.flask_app, "taken@example.com")
    # The first user is inserted, then the second breaks the UNIQUE constraint:
    # the whole transaction must go, the first row included.
    response = httpx.post(
        server.url + USER_PATHS[side], json={"emails": ["new@example.com", "taken@example.com"]}
    )
    assert response.status_code == 409
    assert response.json() == {"error": "conflict with existing data"}
    assert emails(server.hybrid.flask_app) == ["taken@example.com"]


@pytest.mark.parametrize("side", ["flask", "native"])
@pytest.mark.parametrize(
    ("body", "status", "expected"),
    [
        (b"{oops", 400, {"error": "the body must be a JSON object"}),
        (b"[1]", 400, {"error": "the body must be a JSON object"}),
        (b"{}", 422, {"error": "validation failed", "fields": {"emails": "Field required"}}),
        (
            b'{"emails": [7]}',
            422,
            {
                "error": "validation failed",
                "fields": {"emails.0": "Input should be a valid string"},
            },
        ),
        (
            b'{"emails": ["   "]}',
            422,
            {
                "error": "validation failed",
                "fields": {"emails.0": "String should have at least 1 character"},
            },
        ),
        (
            b'{"emails": ["' + b"x" * 255 + b'"]}',
            422,
            {
                "error": "validation failed",
                "fields": {"emails.0": "String should have at most 254 characters"},
            },
        ),
        (
            b'{"emails": ["ada@example.com"], "extra": 1}',
            422,
            {"error": "validation failed", "fields": {"extra": "Extra inputs are not permitted"}},
        ),
    ],
    ids=["invalid-json", "not-object", "missing", "wrong-type", "blank", "oversize", "extra"],
)
def test_bad_input_gets_the_same_answer_from_both_sides(
    live_server: ServerFactory, side: str, body: bytes, status: int, expected: dict[str, object]
) -> None:
    server = serve_users(live_server)
    response = httpx.post(
        server.url + USER_PATHS[side],
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert (response.status_code, response.json()) == (status, expected)
    assert response.headers["content-type"].startswith("application/json")
    assert emails(server.hybrid.flask_app) == []


def test_a_duplicate_is_409_and_writes_nothing(live_server: ServerFactory) -> None:
    server = serve_users(live_server)
    new = {"emails": ["ada@example.com"]}
    with httpx.Client(base_url=server.url) as client:
        assert client.post(USER_PATHS["flask"], json=new).status_code == 201
        for path in USER_PATHS.values():
            duplicate = client.post(path, json=new)
            assert (duplicate.status_code, duplicate.json()) == (
                409,
                {"error": "conflict with existing data"},
            )
        assert client.get(USER_PATHS["native"]).json() == {"emails": ["ada@example.com"]}

    def read(session: Session) -> list[str]:
        return [row[0] for row in session.execute(text("SELECT email FROM users"))]

    assert call_in_session(server.hybrid.flask_app, read) == ["ada@example.com"]
