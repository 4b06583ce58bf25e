"""The native-lane benchmark: ``python -m benchmarks.run lane [options]`` (issue 15).

It measures what a native route that runs a blocking database call costs while Flask
views saturate the shared pool, on the real service: ``GET /api/stats`` (the example's
native handler, one ``run_in_session`` query) probed by ``wrk`` for ``--duration``
seconds while idle, then while ``--blockers`` client threads keep Flask requests to
``GET /block?ms=--block-ms`` in flight (more than ``THREADS``), as benchmark S4 does for
``/native``. The service is ``manage.py serve``'s (``benchmarks/lane_service.py``: the
same ``build_hybrid``, plus that one slow Flask view), ``APP_ENV=production``, on a
fresh migrated SQLite database per side and round (``benchmarks/task_stack.py``).

Sides (``--sides``): ``default`` runs the service's defaults; ``reserved-0`` sets
``RESERVED_THREADS=0``: no reserve, though the threads features hold (the example's
``TASK_THREADS``) still come out of the bridge's share, so it is not the code before issue 15.
Run ``--sides default`` on a checkout without ``RESERVED_THREADS`` for the code before.
Cells are medians over rounds [min-max]; nothing is pinned.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.clients import HOST, Blockers
from benchmarks.machine import machine_info
from benchmarks.scenarios import Metric
from benchmarks.task_stack import Backend, ServiceStack
from benchmarks.tasks import task_versions
from benchmarks.wrk import run_wrk, wrk_path, wrk_version

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PROBE = "/api/stats"
"""The native route probed: one blocking database query on the shared pool."""
SIDES: dict[str, str] = {
    "default": "the service's defaults (RESERVED_THREADS unset: its default where it exists)",
    "reserved-0": "RESERVED_THREADS=0: no reserve; Flask may take every thread but the "
    "in-process tasks' (TASK_THREADS, idle here), so it is no longer the code before issue 15 "
    "(that is issue-15-native-lane-before.md)",
}
"""Side -> what runs."""
SIDE_ENV: dict[str, dict[str, str]] = {"default": {}, "reserved-0": {"RESERVED_THREADS": "0"}}

METRICS: tuple[Metric, ...] = (
    Metric("idle_p50_ms", "idle p50", "ms", False),
    Metric("idle_p99_ms", "idle p99", "ms", False),
    Metric("loaded_p50_ms", "saturated p50", "ms", False),
    Metric("loaded_p99_ms", "saturated p99", "ms", False),
    Metric("loaded_rps", "saturated req/s", "req/s", True),
    Metric("blocked_done", "Flask /block 200s", "", True),
    Metric("blocked_refused", "Flask /block not 200", "", False),
    Metric("errors", "probe errors", "", False),
)


@dataclass
class LaneBenchConfig:
    """Settings of one lane benchmark run.

    :ivar duration: seconds of each probe measurement (idle, then saturated).
    :ivar warmup: seconds of probing before the idle measurement (not counted).
    :ivar connections: wrk's keep-alive connections to the probe.
    :ivar blockers: client threads keeping a ``/block`` request in flight each.
    :ivar block_ms: milliseconds each ``/block`` view sleeps.
    :ivar rounds: rounds of the interleaved sides.
    :ivar threads: ``THREADS`` of the service.
    :ivar sides: the sides run, names of :data:`SIDES`.
    """

    duration: float = 5.0
    warmup: float = 1.0
    connections: int = 8
    blockers: int = 24
    block_ms: int = 1000
    rounds: int = 1
    threads: int = 16
    sides: tuple[str, ...] = tuple(SIDES)

    def as_dict(self) -> dict[str, Any]:
        """The settings as a JSON-friendly dict."""
        out = asdict(self)
        out["sides"] = list(self.sides)
        return out


def probe(cfg: LaneBenchConfig, port: int, seconds: float) -> dict[str, float]:
    """``wrk`` on :data:`PROBE` for ``seconds``: p50/p99 in ms, req/s, errors."""
    result = run_wrk(f"http://{HOST}:{port}{PROBE}", duration=seconds, connections=cfg.connections)
    return result.probe_figures()


def measure(cfg: LaneBenchConfig, port: int) -> dict[str, float]:
    """Idle, then with ``cfg.blockers`` Flask requests held in flight (S4's method)."""
    if cfg.warmup > 0:
        probe(cfg, port, cfg.warmup)
    idle = probe(cfg, port, cfg.duration)
    blockers = Blockers(port, cfg.blockers, cfg.block_ms, max_seconds=cfg.duration + 10.0)
    blockers.start(settle_s=0.3)
    try:
        loaded = probe(cfg, port, cfg.duration)
    finally:
        blockers.stop()
    return {
        "idle_p50_ms": idle["p50_ms"],
        "idle_p99_ms": idle["p99_ms"],
        "loaded_p50_ms": loaded["p50_ms"],
        "loaded_p99_ms": loaded["p99_ms"],
        "loaded_rps": loaded["rps"],
        "blocked_done": float(blockers.completed),
        "blocked_refused": float(blockers.errors),
        "errors": idle["errors"] + loaded["errors"],
    }


Samples = dict[str, dict[str, list[float]]]
"""samples[side][metric] -> one value per round."""


def run_rounds(
    cfg: LaneBenchConfig, log_dir: Path, log: Callable[[str], None] = print
) -> tuple[Samples, list[dict[str, Any]]]:
    """Every side for ``cfg.rounds`` rounds, interleaved; return the samples and errors."""
    sides = list(cfg.sides)
    samples: Samples = {}
    errors: list[dict[str, Any]] = []
    for rnd in range(cfg.rounds):
        for side in sides if rnd % 2 == 0 else sides[::-1]:
            try:
                with (
                    tempfile.TemporaryDirectory(prefix="bench-lane-") as work,
                    ServiceStack(
                        Backend("inprocess", 0),
                        threads=cfg.threads,
                        database_url=None,
                        work_dir=Path(work),
                        log_dir=log_dir,
                        label=f"lane-{side}-round{rnd + 1}",
                        env=SIDE_ENV[side],
                        server_module="benchmarks.lane_service",
                    ) as stack,
                ):
                    values = measure(cfg, stack.port)
                for key, value in values.items():
                    samples.setdefault(side, {}).setdefault(key, []).append(value)
                log(
                    f"[round {rnd + 1}] {side}: {PROBE} idle p50 {values['idle_p50_ms']:.2f} ms; "
                    f"saturated p50 {values['loaded_p50_ms']:.2f} ms, "
                    f"p99 {values['loaded_p99_ms']:.2f} ms"
                )
            except Exception as exc:  # record and go on with the next side
                msg = f"{type(exc).__name__}: {exc}"
                log(f"[round {rnd + 1}] {side}: ERROR {msg}")
                errors.append({"round": rnd + 1, "side": side, "error": msg})
    return {side: samples[side] for side in sides if side in samples}, errors


def render_markdown(data: dict[str, Any]) -> str:
    """The results as Markdown: settings, sides, the table, machine, versions."""
    meta, cfg = data["meta"], data["meta"]["config"]
    lines = [
        f"# Native lane benchmark: GET {PROBE} while Flask saturates the pool",
        "",
        f"- Started {meta['started']}, took {meta['elapsed_s']:.0f} s",
        f"- Command: `{meta['command']}`",
        f"- Code: `{meta['code']}`",
        f"- Probe: `GET {PROBE}` (native, one `run_in_session` query) with "
        f"{meta['versions'].get('wrk')}, {cfg['connections']} connections, "
        f"{cfg['warmup']:g} s warm-up, then {cfg['duration']:g} s idle and {cfg['duration']:g} s "
        f"saturated",
        f"- Saturated: {cfg['blockers']} client threads each keep one Flask "
        f"`GET /block?ms={cfg['block_ms']}` in flight (`THREADS={cfg['threads']}`)",
        f"- Service: `benchmarks/lane_service.py` (`build_hybrid` as `manage.py serve`, plus "
        f"`/block`), `APP_ENV=production`, SQLite file; nothing pinned; {cfg['rounds']} round(s)",
        "- Cells: median over rounds [min-max].",
        "",
        "## Sides",
        "",
    ]
    lines += report.md_table(
        ["side", "what runs"], [[side, SIDES[side]] for side in data["summary"]]
    )
    lines += ["", "## Results", ""]
    header = ["side", *(report.metric_header(m) for m in METRICS)]
    rows = [
        [side, *(report.md_cell(by_metric.get(m.key)) for m in METRICS)]
        for side, by_metric in data["summary"].items()
    ]
    lines += report.md_table(header, rows)
    lines += report.md_closing_sections(meta, data["errors"], "side")
    return "\n".join(lines) + "\n"


def _sides(value: str) -> tuple[str, ...]:
    sides = tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    unknown = [side for side in sides if side not in SIDES]
    if not sides or unknown:
        raise argparse.ArgumentTypeError(f"sides are {', '.join(SIDES)}; got {value!r}")
    return sides


def build_parser() -> argparse.ArgumentParser:
    """The ``lane`` sub-command's command-line interface."""
    d = LaneBenchConfig()
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.run lane",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--duration", type=float, default=d.duration, help="seconds per measurement")
    p.add_argument("--warmup", type=float, default=d.warmup, help="seconds of warm-up")
    p.add_argument("--connections", type=int, default=d.connections, help="wrk connections")
    p.add_argument("--blockers", type=int, default=d.blockers, help="Flask requests held")
    p.add_argument("--block-ms", type=int, default=d.block_ms, help="ms each /block sleeps")
    p.add_argument("--rounds", type=int, default=d.rounds, help=f"rounds (default {d.rounds})")
    p.add_argument("--threads", type=int, default=d.threads, help="THREADS of the service")
    p.add_argument(
        "--sides", type=_sides, default=d.sides, help=f"comma-separated: {', '.join(SIDES)}"
    )
    p.add_argument("--code", default="this checkout", help="what code ran, for the report")
    p.add_argument("--out-dir", type=Path, default=RESULTS_DIR, help="where the reports go")
    p.add_argument("--name", default="lane-latest", help="base name of the reports")
    return p


def main(argv: Sequence[str]) -> int:
    """Run the lane benchmark; 0 when every side ran, 1 if some failed."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if wrk_path() is None:
        parser.error("wrk is not installed (apt-get install -y wrk)")
    cfg = LaneBenchConfig(
        duration=args.duration,
        warmup=args.warmup,
        connections=args.connections,
        blockers=args.blockers,
        block_ms=args.block_ms,
        rounds=args.rounds,
        threads=args.threads,
        sides=args.sides,
    )
    if cfg.duration < 1 or cfg.warmup < 0 or min(cfg.rounds, cfg.threads, cfg.blockers) < 1:
        parser.error("--duration must be at least 1, --warmup 0 or more, the counts 1 or more")
    started = dt.datetime.now(dt.UTC)
    t0 = time.monotonic()
    print(f"benchmarking {PROBE} with Flask saturated: {', '.join(cfg.sides)}", flush=True)
    samples, errors = run_rounds(cfg, args.out_dir / "raw", log=lambda m: print(m, flush=True))
    versions = task_versions()
    versions["wrk"] = wrk_version()
    data: dict[str, Any] = {
        "meta": {
            "command": "python -m benchmarks.run lane " + shlex.join(list(argv)),
            "code": args.code,
            "started": started.isoformat(timespec="seconds"),
            "elapsed_s": time.monotonic() - t0,
            "config": cfg.as_dict(),
            "probe": PROBE,
            "machine": machine_info(),
            "versions": versions,
        },
        "samples": samples,
        "summary": {
            side: {key: report.summarize(values) for key, values in metrics.items()}
            for side, metrics in samples.items()
        },
        "errors": errors,
    }
    data = report.json_safe(data)
    report.write_results(args.out_dir, args.name, data, render_markdown)
    return 1 if errors else 0
