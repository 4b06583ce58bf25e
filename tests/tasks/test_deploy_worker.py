"""``deploy/hybrid-worker.service``: the workers' unit, valid and hardened like the server's."""

from __future__ import annotations

import subprocess
from pathlib import Path

from config import PROJECT_ROOT
from tests.test_deploy_systemd import (
    SYSTEMD_ANALYZE,
    UNIT,
    local_copy,
    needs_systemd_analyze,
    parse_unit,
    seconds,
)

WORKER_UNIT = PROJECT_ROOT / "deploy" / "hybrid-worker.service"


def test_the_worker_unit_runs_the_workers_with_the_services_user_and_environment() -> None:
    worker = parse_unit(WORKER_UNIT.read_text())["Service"]
    server = parse_unit(UNIT.read_text())["Service"]
    (exec_start,) = worker["ExecStart"]
    assert exec_start.endswith("manage.py worker --processes 0")
    for key in ("User", "Group", "WorkingDirectory", "EnvironmentFile", "KillSignal", "KillMode"):
        assert worker[key] == server[key], key
    assert worker["Restart"] == ["on-failure"]
    assert seconds(worker["TimeoutStopSec"][0]) >= seconds(server["TimeoutStopSec"][0])


@needs_systemd_analyze
def test_systemd_accepts_and_scores_the_worker_unit(tmp_path: Path) -> None:
    assert SYSTEMD_ANALYZE is not None
    copy = local_copy(tmp_path, WORKER_UNIT)
    verified = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    assert verified.returncode == 0 and verified.stderr == "", verified.stderr
    scored = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=yes", "--threshold=30", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert scored.returncode == 0, scored.stdout[-2000:] + scored.stderr
