"""A copy of this checkout in a temporary folder, with a virtualenv of its own.

For tests that must see the project as a new user does: files copied (as git
would give them), a fresh virtualenv, ``pip install``, then real commands.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import venv
from pathlib import Path

from config import PROJECT_ROOT

INSTALL_TIMEOUT = 900.0
"""Seconds ``pip install`` may take (packages come from the registry or pip's cache)."""


def copy_checkout(destination: Path) -> Path:
    """Copy the files git tracks, plus untracked ones it does not ignore, to ``destination``.

    What a clone of the working tree would hold: no virtualenv, database,
    cache or build output. A checkout that is not (yet) a git repository, such
    as a project just generated from the skeleton, is listed as untracked
    files through an empty repository of its own, ``.gitignore`` still applied.

    :returns: ``destination``.
    :raises subprocess.CalledProcessError: if git cannot list the files.
    """
    command = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    inside = subprocess.run(
        ["git", "rev-parse", "--is-inside-work-tree"], cwd=PROJECT_ROOT, capture_output=True
    )
    with tempfile.TemporaryDirectory() as empty:
        if inside.returncode != 0:
            subprocess.run(["git", "init", "--quiet", empty], check=True)
            command[1:1] = [f"--git-dir={empty}/.git", f"--work-tree={PROJECT_ROOT}"]
        listed = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, check=True)
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = PROJECT_ROOT / name
        if not source.is_file():  # deleted in the working tree, not yet in the index
            continue
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    return destination


def install(project: Path, extras: str = "test") -> Path:
    """Create ``project/.venv`` and ``pip install -e '.[extras]'`` into it.

    :param project: a checkout (its ``pyproject.toml``).
    :param extras: the optional dependencies to install, e.g. ``"test"``; empty for none.
    :returns: the virtualenv's ``python``.
    :raises AssertionError: if pip fails, with its output.
    """
    environment = project / ".venv"
    venv.EnvBuilder(with_pip=True).create(environment)
    python = environment / "bin" / "python"
    target = f".[{extras}]" if extras else "."
    result = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-e",
            target,
        ],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
    )
    assert result.returncode == 0, f"pip install failed:\n{result.stdout}\n{result.stderr}"
    return python


def assert_suite_passed(result: subprocess.CompletedProcess[str]) -> str:
    """Check a ``pytest -q`` run's exit status and closing line; return that line.

    :param result: the finished run, output captured as text.
    :raises AssertionError: on a non-zero status (with the output's tail), or a
        closing line that counts no passed test, or some failed or in error.
    """
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]
    assert re.search(r"\b\d+ passed\b", summary), summary
    assert not re.search(r"\b\d+ (failed|errors?)\b", summary), summary
    return summary
