"""The mutation-testing configuration stays working (docs/testing.md).

``mutmut run`` is too slow for every CI run, so this checks what would break
it without running it: the ``[tool.mutmut]`` table names paths that exist, and
its test selection collects the fast bridge tests and nothing else.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _mutmut_config() -> dict[str, Any]:
    """Return the ``[tool.mutmut]`` table of the project's pyproject.toml."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    config: dict[str, Any] = data["tool"]["mutmut"]
    return config


def test_mutmut_paths_exist() -> None:
    config = _mutmut_config()
    assert config["source_paths"] == ["wsgi_bridge/"]
    for path in [*config["source_paths"], *config["also_copy"]]:
        assert (ROOT / path).exists(), path


def test_mutmut_runner_collects_the_fast_bridge_tests_only() -> None:
    config = _mutmut_config()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            *config["pytest_add_cli_args"],
            *config["pytest_add_cli_args_test_selection"],
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    ids = [line for line in result.stdout.splitlines() if "::" in line]
    files = {line.split("::")[0] for line in ids}
    assert "tests/bridge/test_promises.py" in files
    assert "tests/bridge/test_units.py" in files
    assert all(f.startswith("tests/bridge/") for f in files), files
    assert "tests/bridge/test_vs_tornado.py" not in files
    assert len(ids) > 300, len(ids)
