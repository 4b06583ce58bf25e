"""Alembic branches: the start-up check and ``db upgrade`` agree on what "migrated" means."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from flask import Flask
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text

from app import create_app
from app.extensions import db
from app.schema_migrations import (
    add_migrations,
    branch_problems,
    head_revisions,
    upgrade_database,
)
from config import Settings
from server.checks import StartupError, check_database
from tests.support.cli import environment, run

# A feature whose table points at users: its branch depends on the skeleton's 0001,
# so Alembic records only the feature's head in alembic_version.
DEPENDENT_REVISION = """
from alembic import op
import sqlalchemy as sa

revision = "bookmarks_0001"
down_revision = None
branch_labels = ("bookmarks",)
depends_on = "0001"


def upgrade():
    op.create_table(
        "bookmarks",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
    )


def downgrade():
    op.drop_table("bookmarks")
"""


@pytest.fixture
def branched_app(settings: Settings, tmp_path: Path) -> Iterator[Flask]:
    """The bare skeleton plus one extra branch that ``depends_on`` the skeleton's 0001."""
    location = tmp_path / "bookmarks_migrations"
    location.mkdir()
    (location / "bookmarks_0001.py").write_text(DEPENDENT_REVISION)
    with ThreadPoolExecutor(1) as executor:
        app = create_app(settings, executor)
        add_migrations(app, location)
        yield app
        with app.app_context():
            db.engine.dispose()


def recorded(flask_app: Flask) -> set[str]:
    """The rows of ``alembic_version``."""
    with flask_app.app_context(), db.engine.connect() as connection:
        return set(connection.scalars(text("SELECT version_num FROM alembic_version")))


def test_a_branch_that_depends_on_another_counts_as_migrated(branched_app: Flask) -> None:
    with pytest.raises(StartupError, match="not migrated"):
        check_database(branched_app)
    upgrade_database(branched_app)
    assert head_revisions(branched_app) == {"0001", "bookmarks_0001"}
    assert recorded(branched_app) == {"bookmarks_0001"}  # 0001 is implied by depends_on
    check_database(branched_app)  # migrated: no error


def test_a_half_migrated_database_is_refused(branched_app: Flask) -> None:
    with branched_app.app_context():
        upgrade(revision="0001")
    with pytest.raises(StartupError, match=r"not migrated \(at revision 0001, head is "):
        check_database(branched_app)


def test_a_revision_no_folder_provides_is_named(branched_app: Flask, settings: Settings) -> None:
    """A feature deleted before its tables were downgraded: say so, not "db upgrade"."""
    upgrade_database(branched_app)
    with ThreadPoolExecutor(1) as executor:
        without = create_app(settings, executor)  # the same database, the branch's folder gone
        with pytest.raises(StartupError, match=r"at revision bookmarks_0001, which no migration"):
            check_database(without)
        with without.app_context():
            db.engine.dispose()


def test_the_skeleton_history_is_one_linear_branch(settings: Settings) -> None:
    with ThreadPoolExecutor(1) as executor:
        app = create_app(settings, executor)
        assert head_revisions(app) == {"0001"}
        upgrade_database(app)
        with app.app_context():
            assert "users" in inspect(db.engine).get_table_names()
            downgrade(revision="base")
            assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
            db.engine.dispose()


def test_each_migration_folder_is_a_branch_of_its_own(flask_app: Flask) -> None:
    """The service's folders (the skeleton's and every feature's) never chain into each other."""
    assert branch_problems(flask_app) == []


def test_a_first_revision_made_without_head_base_is_named(
    settings: Settings, tmp_path: Path
) -> None:
    """``--branch-label x`` without ``--head base`` continues the skeleton's branch: caught."""
    location = tmp_path / "quotes_migrations"
    location.mkdir()
    joined = DEPENDENT_REVISION.replace("down_revision = None", 'down_revision = "0001"')
    (location / "bookmarks_0001.py").write_text(joined.replace('depends_on = "0001"', ""))
    with ThreadPoolExecutor(1) as executor:
        app = create_app(settings, executor)
        add_migrations(app, location)
        problems = branch_problems(app)
    assert len(problems) == 1
    assert problems[0].endswith("bookmarks_0001.py: down_revision 0001 is in migrations/versions")


def test_development_serve_names_a_revision_no_folder_provides(branched_app: Flask) -> None:
    """In development ``serve`` migrates first: it must not end in Alembic's bare error."""
    upgrade_database(branched_app)
    url = branched_app.config["SQLALCHEMY_DATABASE_URI"]
    result = run("serve", env=environment(url, APP_ENV="development", PORT="0"), timeout=60)
    assert result.returncode == 1, result.stderr
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "Error: the database is at revision bookmarks_0001, which no migration folder provides"
        )
    ), result.stderr
