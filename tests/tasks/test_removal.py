"""Removing the example as docs/features.md says leaves a service that installs, serves, passes.

It lives with the example's tests, so it goes away with them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from config.defaults import PROJECT_NAME
from tests.support.cli import ServerProcess
from tests.support.project import assert_suite_passed, copy_checkout, install

EXAMPLE_FOLDERS = ("app/tasks", "tornado_handlers/tasks", "tests/tasks")
"""What docs/features.md says to delete, with the two marked lines of server/features.py."""

EXAMPLE_MARK = "the example (delete to remove it)"


def remove_the_example(project: Path) -> None:
    """Delete the example's folders and its marked lines, as docs/features.md says."""
    for folder in EXAMPLE_FOLDERS:
        shutil.rmtree(project / folder)
    features = project / "server" / "features.py"
    lines = features.read_text().splitlines(keepends=True)
    kept = [line for line in lines if EXAMPLE_MARK not in line]
    assert len(lines) - len(kept) == 2, "server/features.py no longer marks two lines"
    features.write_text("".join(kept))


@pytest.mark.skipif(
    bool(os.environ.get("TEST_DATABASE_URL")), reason="structural: run once, in the SQLite run"
)
def test_without_the_example_the_rest_installs_serves_and_passes(tmp_path: Path) -> None:
    project = copy_checkout(tmp_path / "project")
    remove_the_example(project)
    python = install(project)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "TEST_"))}
    env.update(APP_ENV="testing", SECRET_KEY="x" * 32, PORT="0", AUTORELOAD="false")
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'service.db'}"
    manage = [str(python), str(project / "manage.py")]

    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*manage, *args], cwd=project, env=env, capture_output=True, text=True, timeout=timeout
        )

    heads = run("db", "heads")
    assert heads.returncode == 0, heads.stderr
    lines = heads.stdout.strip().splitlines()
    assert any("(app)" in line for line in lines), heads.stdout  # the skeleton's branch
    assert not any("tasks" in line for line in lines), heads.stdout  # the example's is gone
    upgraded = run("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr

    server = ServerProcess(env=env, manage=manage, cwd=project)
    try:
        base = f"http://127.0.0.1:{server.port()}"
        home = httpx.get(f"{base}/", timeout=10)
        assert home.status_code == 200 and PROJECT_NAME in home.text
        assert httpx.get(f"{base}/healthz", timeout=10).json()["status"] == "ok"
        assert httpx.get(f"{base}/auth/login", timeout=10).status_code == 200
        assert httpx.get(f"{base}/tasks", timeout=10).status_code == 404
        assert server.stop(timeout=20)[0] == 0
    finally:
        server.close()

    suite = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        env={k: v for k, v in env.items() if k not in ("APP_ENV", "SECRET_KEY", "DATABASE_URL")},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert_suite_passed(suite)
