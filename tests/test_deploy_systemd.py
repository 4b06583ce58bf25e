"""``deploy/hybrid.service``, the systemd unit: valid for systemd, and saying what matters.

``systemd-analyze verify`` (Debian's systemd package; no running systemd
needed) checks the unit as systemd would load it, with the interpreter path
pointed at this checkout's (the only substitution: ``/srv/...`` does not exist
here). ``systemd-analyze security --offline`` scores its hardening. The keys
the service's shutdown and restarts depend on are checked one by one.
"""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from config import PROJECT_ROOT, load_settings

UNIT = PROJECT_ROOT / "deploy" / "hybrid.service"

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")

needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is missing: apt-get install systemd"
)


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """``{section: {key: [values, in order]}}`` of a unit file (systemd.syntax(7)).

    Keys may repeat (``SystemCallFilter=``), so each maps to a list.
    """
    sections: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        sections[section][key.strip()].append(value.strip())
    return sections


def seconds(value: str) -> float:
    """A systemd time span without a unit, or in ``s``/``min``, as seconds."""
    match = re.fullmatch(r"([0-9.]+)\s*(s|min)?", value)
    assert match, f"unexpected time span {value!r}"
    return float(match.group(1)) * (60 if match.group(2) == "min" else 1)


def local_copy(tmp_path: Path, unit: Path = UNIT) -> Path:
    """``unit`` with its interpreter replaced by this one (the service name kept)."""
    text = re.sub(r"/\S+/\.venv/bin/python", sys.executable, unit.read_text())
    copy = tmp_path / unit.name
    copy.write_text(text)
    return copy


def test_the_unit_runs_serve_and_stops_it_gracefully() -> None:
    unit = parse_unit(UNIT.read_text())
    service = unit["Service"]
    (exec_start,) = service["ExecStart"]
    assert exec_start.endswith("manage.py serve --processes 0 --no-reload")
    assert service["Type"] == ["simple"]  # serve does not call sd_notify
    assert service["User"] and service["EnvironmentFile"] and service["WorkingDirectory"]
    assert "ExecStartPre" not in service  # migrations are a deploy step (docs/deploy.md)
    assert service["Restart"] == ["on-failure"]
    # SIGTERM to the main process only: it drains its children itself.
    assert service["KillSignal"] == ["SIGTERM"]
    assert service["KillMode"] == ["mixed"]
    # systemd's SIGKILL must not cut the graceful stop short.
    stop = seconds(service["TimeoutStopSec"][0])
    production = load_settings(
        app_env="production", secret_key=secrets.token_hex(32), database_url="sqlite://"
    )
    budget = production.shutdown_timeout + getattr(production, "drain_grace", 0.0)
    assert stop > budget, f"TimeoutStopSec={stop} is not above DRAIN_GRACE + SHUTDOWN_TIMEOUT"
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
    }.items():
        assert service[key] == [value], key
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


@needs_systemd_analyze
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    assert SYSTEMD_ANALYZE is not None
    verified = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(local_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # verify prints warnings (unknown keys, wrong sections) without failing: none allowed.
    assert verified.returncode == 0 and verified.stderr == "", verified.stderr


@needs_systemd_analyze
def test_the_unit_is_hardened(tmp_path: Path) -> None:
    assert SYSTEMD_ANALYZE is not None
    # The threshold is in tenths of the printed exposure (0.0 to 10.0; an unhardened
    # service scores 9.6): fail above 3.0, where systemd still says "OK".
    scored = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=yes", "--threshold=30", str(local_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert scored.returncode == 0, scored.stdout[-2000:] + scored.stderr
    assert "Overall exposure level" in scored.stdout
