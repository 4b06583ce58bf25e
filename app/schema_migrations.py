"""Alembic through Flask-Migrate: the skeleton's branch and one branch per feature.

The skeleton's revisions live in ``migrations/versions`` (branch ``app``); a
feature adds its own folder with :func:`add_migrations`, whose first revision
starts a branch named after the feature. ``manage.py db upgrade`` applies every
branch (``heads``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from flask import Flask, current_app

from app.database import ensure_sqlite_directory
from app.extensions import db, migrate
from config import PROJECT_ROOT

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIRECTORY = PROJECT_ROOT / "migrations"
"""Alembic's environment (``env.py``, ``alembic.ini``) and the skeleton's ``versions/``."""

MIGRATION_LOCATIONS_KEY = "migration_locations"
"""Where the version locations live: ``flask_app.extensions["migration_locations"]``."""


def init_migrations(flask_app: Flask) -> None:
    """Bind Flask-Migrate to ``flask_app``: ``migrations/``, batch mode, type comparison.

    The skeleton's revisions live in ``migrations/versions`` (branch ``app``);
    features add their own version locations with :func:`add_migrations`.
    ``render_as_batch`` lets the same revisions alter tables on SQLite.
    """
    if _version_locations not in migrate.configure_callbacks:
        migrate.configure(_version_locations)
    migrate.init_app(
        flask_app,
        db,
        directory=str(MIGRATIONS_DIRECTORY),
        render_as_batch=True,
        compare_type=True,
    )
    flask_app.extensions[MIGRATION_LOCATIONS_KEY] = [MIGRATIONS_DIRECTORY / "versions"]


def add_migrations(flask_app: Flask, location: Path) -> None:
    """Add a feature's folder of Alembic revisions (a version location) to ``flask_app``.

    The folder's first revision has ``down_revision = None`` and a branch label
    of the feature's name, so the feature's history is a branch of its own:
    deleting the folder leaves the skeleton's history linear and whole.

    :param location: an existing directory of revision files.
    """
    flask_app.extensions[MIGRATION_LOCATIONS_KEY].append(location)


def _version_locations(config: Config) -> Config:
    """Flask-Migrate configure callback: Alembic's ``version_locations`` of the current app."""
    locations: list[Path] = current_app.extensions[MIGRATION_LOCATIONS_KEY]
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", os.pathsep.join(str(p) for p in locations))
    return config


def alembic_config(flask_app: Flask) -> Config:
    """Return the Alembic :class:`~alembic.config.Config` Flask-Migrate uses for ``flask_app``.

    Needs an app context of ``flask_app`` only while it is built.
    """
    with flask_app.app_context():
        config: Config = flask_app.extensions["migrate"].migrate.get_config()
    return config


def head_revisions(flask_app: Flask) -> set[str]:
    """Return the head revision of every branch (the skeleton's and each feature's)."""
    from alembic.script import ScriptDirectory

    return set(ScriptDirectory.from_config(alembic_config(flask_app)).get_heads())


def unapplied_revisions(flask_app: Flask, current: Iterable[str]) -> tuple[set[str], set[str]]:
    """Compare the revisions a database records with those the migration folders hold.

    A database is up to date when the revisions its ``alembic_version`` rows
    reach (each row, its ancestors and its ``depends_on``) are all those the
    heads of every branch reach: a branch that depends on another records only
    its own head, so the rows alone are not the heads.

    :param current: the ``version_num`` values of ``alembic_version``.
    :returns: ``(missing, unknown)``: revisions still to apply, and recorded
        revisions no folder provides (a feature deleted before its tables were
        downgraded).
    """
    from alembic.script import Script, ScriptDirectory
    from alembic.script.revision import RevisionError

    script = ScriptDirectory.from_config(alembic_config(flask_app))
    known = {revision.revision for revision in script.walk_revisions()}
    unknown = {revision for revision in current if revision not in known}

    def reached(revisions: Iterable[str]) -> set[str]:
        seen: set[str] = set()
        stack = list(revisions)
        while stack:
            try:
                found = script.revision_map.get_revisions(stack.pop())
            except RevisionError:
                continue
            for revision in found:
                if not isinstance(revision, Script) or revision.revision in seen:
                    continue
                seen.add(revision.revision)
                stack.extend(_ids(revision.down_revision))
                stack.extend(_ids(revision.dependencies))
        return seen

    missing = reached(script.get_heads()) - reached(set(current) - unknown)
    return missing, unknown


def branch_problems(flask_app: Flask) -> list[str]:
    """Find revisions that leave their folder's branch: each folder must be a branch of its own.

    A revision's ``down_revision`` must be in the same folder (or ``None`` for
    the folder's first revision), so that deleting a feature's folder deletes
    its whole branch and nothing of the skeleton's. A first revision created
    without ``--head base`` silently continues the skeleton's branch instead,
    and the skeleton's next revision then lands in the feature's folder.
    (``depends_on`` may point anywhere: it orders branches without joining them.)

    :returns: one line per offending revision, e.g. ``"app/x/migrations/x_0001.py:
        down_revision 0001 is in migrations/versions"``; empty when all is well.
    """
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(flask_app))
    folder_of = {rev.revision: Path(rev.path).parent for rev in script.walk_revisions()}
    problems = []
    for revision in script.walk_revisions():
        for parent in _ids(revision.down_revision):
            if folder_of.get(parent) != folder_of[revision.revision]:
                problems.append(
                    f"{_relative(revision.path)}: down_revision {parent} is in "
                    f"{_relative(folder_of.get(parent, Path('?')))}"
                )
    return sorted(problems)


def _relative(path: str | Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def _ids(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def upgrade_database(flask_app: Flask) -> None:
    """Apply every Alembic migration of every branch to ``flask_app``'s database.

    ``db upgrade heads``. Creates the directory of a SQLite database file
    first. Used by ``serve`` in development and by the tests; deployments run
    ``manage.py db upgrade heads``.
    """
    from flask_migrate import upgrade

    ensure_sqlite_directory(flask_app.config["SQLALCHEMY_DATABASE_URI"])
    with flask_app.app_context():
        upgrade(revision="heads")
