"""Smoke test of the benchmark runner (``python -m benchmarks.run``).

A tiny run: one round, 1 s wrk measurements, 2 MiB transfers, two peer servers (plus
the hybrid server when ``wsgi_bridge`` is importable). It checks that the runner writes
sane JSON / Markdown / PNG reports; the numbers themselves are not judged.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import run as bench_run
from benchmarks.report import BEGIN_MARK, END_MARK, summarize, update_doc
from benchmarks.servers import PROJECT_ROOT, SERVERS
from benchmarks.wrk import parse_wrk_output, wrk_path

WRK_SAMPLE = """\
Running 1s test @ http://127.0.0.1:8000/hello
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.37ms    1.02ms  19.63ms   90.10%
    Req/Sec     5.98k   312.51     6.32k    80.00%
  Latency Distribution
     50%    5.18ms
     75%    5.52ms
     90%    6.15ms
     99%  850.00us
  5951 requests in 1.00s, 0.95MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:   5947.22
Transfer/sec:      0.95MB
"""


def _run_bench(
    out_dir: Path, *extra: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if p)
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.run",
        "--quick",
        "--warmup",
        "0",
        "--stream-mb",
        "2",
        "--upload-mb",
        "2",
        "--out-dir",
        str(out_dir),
        *extra,
    ]
    return subprocess.run(
        cmd,
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def _median(data: dict[str, Any], scenario: str, server: str, metric: str) -> float:
    return float(data["summary"][scenario][server][metric]["median"])


def test_wrk_is_installed() -> None:
    """wrk drives S1, S2, SN and S4; CI installs it (apt-get install -y wrk)."""
    assert wrk_path() is not None, "wrk is missing: apt-get install -y wrk"


def test_parse_wrk_output() -> None:
    """wrk's --latency text is parsed, with units converted to milliseconds."""
    res = parse_wrk_output(WRK_SAMPLE)
    assert res.requests_per_sec == pytest.approx(5947.22)
    assert res.requests == 5951
    assert res.p50_ms == pytest.approx(5.18)
    assert res.p99_ms == pytest.approx(0.85)
    assert res.max_ms == pytest.approx(19.63)
    assert res.socket_errors == 3
    assert res.non_2xx == 4


def test_summarize_spread() -> None:
    """Medians and min-max spreads ignore NaN values."""
    stats = summarize([3.0, 1.0, 2.0, float("nan")])
    assert (stats["median"], stats["min"], stats["max"], stats["n"]) == (2.0, 1.0, 3.0, 3)


def test_unavailable_server_fails_clearly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A server whose check fails stops the run with exit code 2 and says why."""
    broken = dataclasses.replace(
        SERVERS["hybrid"], check_code="raise SystemExit('wsgi_bridge is not ready')"
    )
    monkeypatch.setitem(SERVERS, "hybrid", broken)
    code = bench_run.main(
        ["--quick", "--servers", "hybrid", "--scenarios", "S3", "--out-dir", str(tmp_path)]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "'hybrid' is not available" in err
    assert "wsgi_bridge is not ready" in err
    assert not (tmp_path / "latest.json").exists()


def _check_common(data: dict[str, Any], out_dir: Path, servers: list[str]) -> None:
    assert data["meta"]["mode"] == "quick"
    assert data["meta"]["servers"] == servers
    assert data["errors"] == []
    for server in servers:
        for scen in ("S1", "S2"):
            assert _median(data, scen, server, "rps") > 0  # measured; speed is not judged
            assert 0 < _median(data, scen, server, "p99_ms") < 5000
            assert _median(data, scen, server, "errors") == 0
        assert 0.2 <= _median(data, "S3", server, "wall_s") < 10
        assert _median(data, "S3", server, "errors") == 0
        assert _median(data, "S5", server, "mib_s") > 0
        assert _median(data, "S5", server, "ttfb_ms") > 0
        assert _median(data, "S5", server, "errors") == 0
        assert _median(data, "S6", server, "seconds") > 0
        assert _median(data, "S6", server, "errors") == 0
    assert {t["id"] for t in data["targets"]} >= {"S1a", "S3", "S4", "S5a", "S6b"}
    md = (out_dir / "latest.md").read_text()
    assert "QUICK RUN" in md
    assert "## S1" in md and "## S6" in md and "## Targets" in md
    assert data["meta"]["machine"]["cpu_model"]
    assert data["meta"]["versions"]["tornado"]


def test_quick_run_writes_reports(tmp_path: Path) -> None:
    """A tiny run against two peers writes JSON, Markdown and PNG with sane numbers."""
    servers = ["tornado-wsgi", "waitress"]
    proc = _run_bench(
        tmp_path,
        "--servers",
        ",".join(servers),
        "--reference",
        "tornado-wsgi",
        "--scenarios",
        "S1,S2,SN,S3,S4,S5,S6",  # S7/S8: test_quick_run_admission_scenarios
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads((tmp_path / "latest.json").read_text())
    _check_common(data, tmp_path, servers)
    assert _median(data, "SN", "tornado-wsgi", "rps") > 0  # measured; speed is not judged
    assert _median(data, "S4", "tornado-wsgi", "blocked_in_flight") >= 16
    # Parsed from wrk (NaN if not); 0.0 when no request finished in a loaded window
    # of the quick run, as happened once under load: the peer's speed is not judged.
    assert _median(data, "S4", "tornado-wsgi", "loaded_p99_ms") >= 0
    assert data["ratios"]["S1"]["waitress"]["rps"] > 0
    png = (tmp_path / "latest.png").read_bytes()
    assert png.startswith(b"\x89PNG")


def test_quick_run_hybrid(tmp_path: Path) -> None:
    """The hybrid server runs every scenario (skipped while wsgi_bridge is unavailable)."""
    reason = SERVERS["hybrid"].check()
    if reason is not None:
        pytest.skip(f"wsgi_bridge not available: {reason}")
    proc = _run_bench(
        tmp_path, "--servers", "hybrid", "--scenarios", "S1,S2,SN,S3,S4,S5,S6", "--no-png"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads((tmp_path / "latest.json").read_text())
    _check_common(data, tmp_path, ["hybrid"])
    assert _median(data, "SN", "hybrid", "rps") > 0  # measured; speed is not judged
    assert _median(data, "S4", "hybrid", "blocked_in_flight") >= 16


def test_quick_run_admission_scenarios(tmp_path: Path) -> None:
    """S7 (burst) and S8 (10x overload) run on the hybrid server and waitress; a 10x
    overload makes the hybrid shed, waitress queues everything."""
    reason = SERVERS["hybrid"].check()
    if reason is not None:
        pytest.skip(f"wsgi_bridge not available: {reason}")
    servers = ["hybrid", "waitress"]
    proc = _run_bench(
        tmp_path, "--servers", ",".join(servers), "--scenarios", "S7,S8", "--no-png", timeout=180
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads((tmp_path / "latest.json").read_text())
    assert data["errors"] == []
    for server in servers:
        served = _median(data, "S7", server, "served")
        shed = _median(data, "S7", server, "shed")
        assert served + shed + _median(data, "S7", server, "errors") == 160
        assert _median(data, "S8", server, "offered_rps") == 800
        assert _median(data, "S8", server, "rss_end_mib") > 0
        assert _median(data, "S8", server, "errors") == 0
    assert _median(data, "S8", "hybrid", "shed_share") > 0
    assert _median(data, "S8", "hybrid", "native_p99_ms") > 0
    assert _median(data, "S8", "waitress", "shed_share") == 0  # it never refuses
    assert {t["id"] for t in data["targets"]} >= {"S7", "S8a", "S8b", "S8c"}
    md = (tmp_path / "latest.md").read_text()
    assert "## S7" in md and "## S8" in md


def test_update_doc_replaces_marked_section(tmp_path: Path) -> None:
    """--update-docs rewrites only the section between the markers, idempotently."""
    doc = tmp_path / "benchmarks.md"
    doc.write_text((PROJECT_ROOT / "docs" / "benchmarks.md").read_text())
    results = "# Benchmark results\n\n## S1 — GET /hello\n\n| a |\n"
    update_doc(doc, results)
    first = doc.read_text()
    update_doc(doc, results)
    assert doc.read_text() == first
    assert first.count(BEGIN_MARK) == 1 and first.count(END_MARK) == 1
    assert "### Latest full run" in first and "#### S1 — GET /hello" in first
    assert first.startswith("# Benchmarks\n")


NEEDS_THE_EXAMPLE = pytest.mark.skipif(
    not (PROJECT_ROOT / "app" / "tasks").is_dir(),
    reason="the example is removed here: 'run tasks' measures its task queue",
)
"""The ``tasks`` mode benchmarks the example feature: gone with it (tests/tasks/test_removal.py)."""


@NEEDS_THE_EXAMPLE
def test_tasks_run_measures_each_backend(tmp_path: Path) -> None:
    """``run tasks``: 20 tasks in process and on the queue with one worker (a private Redis),
    every task reported ``succeeded`` on the WebSocket, the report's shape; speed not judged."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if p)
    cmd = [
        *(sys.executable, "-m", "benchmarks.run", "tasks", "--tasks", "20", "--workers", "1"),
        *("--rounds", "1", "--warmup-tasks", "2", "--timeout", "60"),
        *("--out-dir", str(tmp_path), "--name", "smoke"),
    ]
    database = os.environ.get("TEST_DATABASE_URL")
    if database and database.startswith("postgresql"):
        cmd += ["--database-url", database]  # a schema of its own per stack, dropped after
    proc = subprocess.run(
        cmd,
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads((tmp_path / "smoke.json").read_text())
    assert data["errors"] == []
    assert list(data["meta"]["backends"]) == ["inprocess", "queue-1"]
    assert data["meta"]["task"] == {"kind": "sleep", "params": {"steps": 1, "delay": 0}}
    for backend in ("inprocess", "queue-1"):
        stats = {key: value["median"] for key, value in data["summary"][backend].items()}
        assert stats["completed"] == 20 and stats["errors"] == 0
        assert stats["enqueue_tps"] > 0 and stats["enqueue_p50_ms"] > 0
        assert 0 < stats["e2e_p50_ms"] <= stats["e2e_p99_ms"]
        assert stats["all_done_s"] > 0
    assert data["ratios"]["queue-1"]["e2e_p50_ms"] > 0
    md = (tmp_path / "smoke.md").read_text()
    assert "## Results" in md and "| queue-1 |" in md and "Ratios backend/inprocess" in md


def test_tasks_run_refuses_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    """A worker count below 1 is refused before anything starts (exit code 2)."""
    with pytest.raises(SystemExit) as exited:
        bench_run.main(["tasks", "--workers", "1,0"])
    assert exited.value.code == 2
    assert "worker counts must be 1 or more" in capsys.readouterr().err


@NEEDS_THE_EXAMPLE
@pytest.mark.parametrize("client", ["wrk", "python"])
def test_shadow_run_measures_both_sides(tmp_path: Path, client: str) -> None:
    """``run shadow``: the ported task detail with the shadow off and on, 1 s each, with
    either load generator; the report's shape and the server's own counts; speed not judged."""
    if client == "wrk" and wrk_path() is None:
        pytest.skip("wrk is not installed")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if p)
    cmd = [
        *(sys.executable, "-m", "benchmarks.run", "shadow", "--duration", "1", "--warmup", "0"),
        *("--rounds", "1", "--connections", "2", "--client", client),
        *("--out-dir", str(tmp_path), "--name", "smoke"),
    ]
    proc = subprocess.run(
        cmd,
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads((tmp_path / "smoke.json").read_text())
    assert data["errors"] == []
    assert list(data["meta"]["sides"]) == ["off", "on", "on-10"]
    assert list(data["summary"]["c2"]) == ["off", "on", "on-10"]
    for side in ("off", "on", "on-10"):
        stats = {key: value["median"] for key, value in data["summary"]["c2"][side].items()}
        assert 0 < stats["p50_ms"] <= stats["p99_ms"] and stats["rps"] > 0
        assert stats["errors"] == 0
        assert stats["native"] > 0  # the server counted the route's requests, native side
    off = {key: value["median"] for key, value in data["summary"]["c2"]["off"].items()}
    assert (off["compared"], off["skipped"]) == (0, 0)  # no shadow without SHADOW_ROUTES
    on = {key: value["median"] for key, value in data["summary"]["c2"]["on"].items()}
    assert on["compared"] + on["skipped"] > 0  # the shadow ran (or was skipped, counted)
    assert data["ratios"]["c2"]["on"]["p50_ms"] > 0
    assert data["ratios"]["c2"]["on-10"]["p50_ms"] > 0
    md = (tmp_path / "smoke.md").read_text()
    assert "## 2 connection(s)" in md and "| on-10 |" in md and "Ratio to off" in md


def test_shadow_run_refuses_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    """A connection count below 1 is refused before anything starts (exit code 2)."""
    with pytest.raises(SystemExit) as exited:
        bench_run.main(["shadow", "--connections", "2,0"])
    assert exited.value.code == 2
    assert "connection counts must be 1 or more" in capsys.readouterr().err


@NEEDS_THE_EXAMPLE
def test_lane_run_measures_both_sides(tmp_path: Path) -> None:
    """``run lane``: /api/stats idle and with Flask saturated, on both sides, 1 s each;
    the report's shape; speed not judged."""
    if wrk_path() is None:
        pytest.skip("wrk is not installed")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if p)
    cmd = [
        *(sys.executable, "-m", "benchmarks.run", "lane", "--duration", "1", "--warmup", "0"),
        *("--threads", "4", "--blockers", "6", "--block-ms", "300", "--connections", "2"),
        *("--out-dir", str(tmp_path), "--name", "smoke"),
    ]
    proc = subprocess.run(
        cmd,
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads((tmp_path / "smoke.json").read_text())
    assert data["errors"] == []
    assert list(data["summary"]) == ["default", "reserved-0"]
    for side in ("default", "reserved-0"):
        stats = {key: value["median"] for key, value in data["summary"][side].items()}
        assert 0 < stats["loaded_p50_ms"] <= stats["loaded_p99_ms"]
        assert stats["errors"] == 0 and stats["blocked_done"] > 0
    md = (tmp_path / "smoke.md").read_text()
    assert "| reserved-0 |" in md and "saturated p99" in md


def test_lane_run_refuses_an_unknown_side(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown side is refused before anything starts (exit code 2)."""
    with pytest.raises(SystemExit) as exited:
        bench_run.main(["lane", "--sides", "default,fast"])
    assert exited.value.code == 2
    assert "sides are default, reserved-0" in capsys.readouterr().err
