"""The task-queue benchmark: ``python -m benchmarks.run tasks [options]``.

It measures the example feature's background tasks as a deployment runs them,
``TASK_BACKEND=inprocess`` (``manage.py serve`` alone) side by side with
``TASK_BACKEND=queue`` and 1, 2, ... ``manage.py worker --processes N``:

* **enqueue throughput**: ``--tasks`` trivial tasks (kind ``sleep`` with
  ``{"steps": 1, "delay": 0}``) sent with ``POST /api/tasks`` by ``--clients``
  concurrent keep-alive connections, in tasks per second (201 responses over the
  time from the first request to the last response), with the requests' p50/p99;
* **end-to-end latency**: for each task, from just before its ``POST`` to the
  WebSocket event (``/ws/tasks``, one client connected before the first request)
  that reports it ``succeeded``, matched by task id; p50, p99, and the time until
  all of them succeeded.

Each backend gets a fresh stack per round: a database (a SQLite file, or a schema of
its own in the PostgreSQL database ``--database-url`` names) migrated by ``manage.py db
upgrade``, a private ``redis-server`` on a free port (queue backends only), ``manage.py
serve`` and the workers; all of them are stopped by PID afterwards. Backends are
interleaved for ``--rounds`` rounds with the order rotated every round, as the HTTP
runner does; cells are medians over rounds [min-max]. Nothing is pinned: the server,
the workers, Redis and the load generator share every CPU.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import math
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from benchmarks import report
from benchmarks.machine import git_commit, machine_info
from benchmarks.scenarios import Metric
from benchmarks.task_load import TRIVIAL_TASK, measure
from benchmarks.task_stack import Backend, ServiceStack, redis_server_path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REFERENCE = "inprocess"

METRICS: tuple[Metric, ...] = (
    Metric("enqueue_tps", "enqueue", "tasks/s", True),
    Metric("enqueue_p50_ms", "POST p50", "ms", False),
    Metric("enqueue_p99_ms", "POST p99", "ms", False),
    Metric("e2e_p50_ms", "end-to-end p50", "ms", False),
    Metric("e2e_p99_ms", "end-to-end p99", "ms", False),
    Metric("pickup_p50_ms", "queued→running p50", "ms", False),
    Metric("pickup_p99_ms", "queued→running p99", "ms", False),
    Metric("all_done_s", "all succeeded", "s", False),
    Metric("completed", "succeeded", "", True),
    Metric("errors", "errors", "", False),
)
NOT_RATIOED = frozenset({"completed", "errors"})
TASK_PACKAGES = {
    "tornado": "tornado",
    "flask": "flask",
    "sqlalchemy": "sqlalchemy",
    "dramatiq": "dramatiq",
    "redis-py": "redis",
    "psycopg": "psycopg",
}
"""Report label -> distribution name."""


@dataclass
class TaskBenchConfig:
    """Settings of one tasks benchmark run (defaults: the issue's measurement).

    :ivar tasks: tasks enqueued and awaited per backend and round.
    :ivar workers: worker process counts of the queue backends (one backend each).
    :ivar clients: concurrent HTTP connections that enqueue.
    :ivar rounds: rounds of the interleaved backends.
    :ivar warmup_tasks: tasks enqueued and awaited before the measurement (not counted).
    :ivar timeout: seconds the enqueueing and the wait for the last event may take,
        per backend and round; what is not done by then is reported, not waited for.
    :ivar threads: ``THREADS`` of the server and of each worker process.
    :ivar database_url: a PostgreSQL URL (each stack gets a schema of its own in it),
        or ``None`` for a SQLite file per stack.
    """

    tasks: int = 1000
    workers: tuple[int, ...] = (1, 2)
    clients: int = 4
    rounds: int = 3
    warmup_tasks: int = 20
    timeout: float = 120.0
    threads: int = 16
    database_url: str | None = None

    def backends(self) -> list[Backend]:
        """``inprocess`` first, then one queue backend per worker count."""
        return [Backend(REFERENCE, 0), *(Backend(f"queue-{n}", n) for n in self.workers)]

    def as_dict(self) -> dict[str, Any]:
        """The settings as a JSON-friendly dict (a database URL's password hidden)."""
        out = asdict(self)
        out["workers"] = list(self.workers)
        if self.database_url:
            out["database_url"] = make_url(self.database_url).render_as_string(hide_password=True)
        return out


Samples = dict[str, dict[str, list[float]]]
"""samples[backend][metric] -> one value per round."""


def run_rounds(
    cfg: TaskBenchConfig, log_dir: Path, log: Callable[[str], None] = print
) -> tuple[Samples, list[dict[str, Any]]]:
    """Run every backend for ``cfg.rounds`` rounds, interleaved; return samples and errors."""
    backends = cfg.backends()
    samples: Samples = {}
    errors: list[dict[str, Any]] = []
    for rnd in range(cfg.rounds):
        shift = rnd % len(backends)
        for backend in backends[shift:] + backends[:shift]:
            t0 = time.monotonic()
            label = f"tasks-{backend.name}-round{rnd + 1}"
            try:
                with (
                    tempfile.TemporaryDirectory(prefix="bench-tasks-") as work,
                    ServiceStack(
                        backend,
                        threads=cfg.threads,
                        database_url=cfg.database_url,
                        work_dir=Path(work),
                        log_dir=log_dir,
                        label=label,
                    ) as stack,
                ):
                    values, unsucceeded = measure(
                        stack.port,
                        tasks=cfg.tasks,
                        clients=cfg.clients,
                        warmup_tasks=cfg.warmup_tasks,
                        timeout=cfg.timeout,
                    )
            except Exception as exc:  # record and go on with the next backend
                msg = f"{type(exc).__name__}: {exc}"
                log(f"[round {rnd + 1}] {backend.name}: ERROR {msg}")
                errors.append({"round": rnd + 1, "backend": backend.name, "error": msg})
                continue
            if values["completed"] < cfg.tasks:  # measured, but not what was asked for
                msg = f"{values['completed']:.0f} of {cfg.tasks} tasks succeeded in time"
                if unsucceeded:
                    shown = list(unsucceeded.items())[:10]
                    msg += "; not: " + ", ".join(f"task {i} ({why})" for i, why in shown)
                    msg += f" (logs: raw/{label}-*.log)"
                errors.append({"round": rnd + 1, "backend": backend.name, "error": msg})
            per_metric = samples.setdefault(backend.name, {})
            for key, value in values.items():
                per_metric.setdefault(key, []).append(value)
            log(
                f"[round {rnd + 1}] {backend.name:<10} "
                f"enqueue {values['enqueue_tps']:.0f} tasks/s, "
                f"e2e p50 {values['e2e_p50_ms']:.1f} ms p99 {values['e2e_p99_ms']:.1f} ms, "
                f"{values['completed']:.0f}/{cfg.tasks} succeeded ({time.monotonic() - t0:.1f} s)"
            )
    order = [b.name for b in backends]
    return {name: samples[name] for name in order if name in samples}, errors


def ratios(summary: dict[str, dict[str, report.Stats]]) -> dict[str, dict[str, float]]:
    """``backend / inprocess`` of the medians, for every queue backend and metric."""
    ref = summary.get(REFERENCE)
    if ref is None:
        return {}
    out: dict[str, dict[str, float]] = {}
    for name, metrics in summary.items():
        if name == REFERENCE:
            continue
        row = {}
        for key, stats in metrics.items():
            if key in NOT_RATIOED:
                continue
            base = ref.get(key, {}).get("median", math.nan)
            value = stats["median"]
            row[key] = value / base if base and math.isfinite(base) else math.nan
        out[name] = row
    return out


def task_versions() -> dict[str, str]:
    """Versions of what the tasks benchmark exercises, and this project's commit."""
    out = {"python": f"{platform.python_implementation()} {platform.python_version()}"}
    for label, name in TASK_PACKAGES.items():
        try:
            out[label] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[label] = "not installed"
    server = redis_server_path()
    out["redis-server"] = "not installed"
    if server is not None:
        found = subprocess.run(
            [server, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
        match = re.search(r"v=(\S+)", found.stdout)
        out["redis-server"] = match.group(1) if match else found.stdout.strip()
    out["project_commit"] = git_commit()
    return out


def render_markdown(data: dict[str, Any]) -> str:
    """The results as Markdown: settings, machine, versions, the table and the ratios."""
    meta, cfg = data["meta"], data["meta"]["config"]
    database = cfg["database_url"] or "SQLite file (WAL), one per stack"
    lines = [
        "# Task queue benchmark",
        "",
        f"- Started {meta['started']}, took {meta['elapsed_s']:.0f} s",
        f"- Command: `{meta['command']}`",
        f"- Rounds: {cfg['rounds']} (backends interleaved, order rotated every round; "
        "a fresh database, Redis, server and workers per backend and round)",
        f"- Load: {cfg['tasks']} tasks `{json.dumps(TRIVIAL_TASK)}` per backend and round, "
        f"`POST /api/tasks` over {cfg['clients']} keep-alive connections, after "
        f"{cfg['warmup_tasks']} warm-up tasks; one WebSocket client on `/ws/tasks`",
        f"- Service: `APP_ENV=production`, `THREADS={cfg['threads']}` (server and each "
        f"worker process), database: {database}; nothing pinned",
        "- End-to-end: from just before a task's POST to the WebSocket event that reports "
        "it `succeeded`; queued→running: from the task's `created_at` to its `started_at` "
        "(the server's own stamps, in the event); all succeeded: from the first POST to the "
        "last `succeeded` event",
        "- Cells: median over rounds [min-max]. Ratios: backend/inprocess of the medians "
        "(for tasks/s higher is better, for times lower is better).",
        "",
        "## Backends",
        "",
    ]
    lines += report.md_table(
        ["backend", "what runs"], [[n, d] for n, d in meta["backends"].items()]
    )
    lines += ["", "## Results", ""]
    header = ["backend", *(report.metric_header(m) for m in METRICS)]
    rows = [
        [name, *(report.md_cell(by_metric.get(m.key)) for m in METRICS)]
        for name, by_metric in data["summary"].items()
    ]
    lines += report.md_table(header, rows)
    if data["ratios"]:
        shown = [m for m in METRICS if m.key not in NOT_RATIOED]
        lines += ["", f"Ratios backend/{REFERENCE}:", ""]
        lines += report.md_table(
            ["backend", *(m.label for m in shown)],
            [
                [name, *(report.md_ratio(row.get(m.key)) for m in shown)]
                for name, row in data["ratios"].items()
            ],
        )
    lines += report.md_closing_sections(meta, data["errors"], "backend")
    return "\n".join(lines) + "\n"


def _counts(value: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of integers: {value!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("worker counts must be 1 or more")
    return tuple(dict.fromkeys(counts))


def build_parser() -> argparse.ArgumentParser:
    """The ``tasks`` sub-command's command-line interface."""
    d = TaskBenchConfig()
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.run tasks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--tasks", type=int, default=d.tasks, help=f"tasks per backend (default {d.tasks})"
    )
    p.add_argument(
        "--workers",
        type=_counts,
        default=d.workers,
        help="comma-separated worker process counts, one queue backend each (default 1,2)",
    )
    p.add_argument(
        "--clients",
        type=int,
        default=d.clients,
        help=f"enqueueing connections (default {d.clients})",
    )
    p.add_argument("--rounds", type=int, default=d.rounds, help=f"rounds (default {d.rounds})")
    p.add_argument(
        "--warmup-tasks",
        type=int,
        default=d.warmup_tasks,
        help=f"tasks run before each measurement (default {d.warmup_tasks})",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=d.timeout,
        help=f"seconds per backend and round for enqueueing and events (default {d.timeout:g})",
    )
    p.add_argument("--threads", type=int, default=d.threads, help="THREADS of server and workers")
    p.add_argument(
        "--database-url",
        help="a PostgreSQL URL: each stack gets a schema of its own there (default: SQLite files)",
    )
    p.add_argument("--out-dir", type=Path, default=RESULTS_DIR, help="where the reports go")
    p.add_argument(
        "--name", default="tasks-latest", help="base name of the reports (default tasks-latest)"
    )
    return p


def main(argv: Sequence[str]) -> int:
    """Run the tasks benchmark; 0 when every backend ran, 1 if some failed, 2 if it cannot start."""
    parser = build_parser()
    args = parser.parse_args(argv)
    cfg = TaskBenchConfig(
        tasks=args.tasks,
        workers=args.workers,
        clients=args.clients,
        rounds=args.rounds,
        warmup_tasks=args.warmup_tasks,
        timeout=args.timeout,
        threads=args.threads,
        database_url=args.database_url,
    )
    if min(cfg.tasks, cfg.clients, cfg.rounds, cfg.threads) < 1 or cfg.warmup_tasks < 0:
        parser.error("--tasks, --clients, --rounds and --threads must be at least 1")
    if cfg.timeout <= 0:
        parser.error("--timeout must be positive")
    if cfg.database_url is not None and not cfg.database_url.startswith("postgresql"):
        parser.error("--database-url must be a PostgreSQL URL (SQLite is the default)")
    if redis_server_path() is None:
        print(
            "error: redis-server is not installed; apt-get install -y redis-server", file=sys.stderr
        )
        return 2
    started = dt.datetime.now(dt.UTC)
    t0 = time.monotonic()
    backends = cfg.backends()
    print(
        f"benchmarking tasks: {', '.join(b.name for b in backends)}; {cfg.tasks} tasks, "
        f"{cfg.rounds} round(s)",
        flush=True,
    )

    def log(msg: str) -> None:
        print(msg, flush=True)

    meta_machine = machine_info()
    samples, errors = run_rounds(cfg, args.out_dir / "raw", log=log)
    summary = {
        name: {key: report.summarize(values) for key, values in metrics.items()}
        for name, metrics in samples.items()
    }
    data: dict[str, Any] = {
        "meta": {
            "command": "python -m benchmarks.run tasks " + shlex.join(list(argv)),
            "started": started.isoformat(timespec="seconds"),
            "elapsed_s": time.monotonic() - t0,
            "config": cfg.as_dict(),
            "task": TRIVIAL_TASK,
            "backends": {b.name: b.description for b in backends},
            "reference": REFERENCE,
            "machine": meta_machine,
            "versions": task_versions(),
        },
        "samples": samples,
        "summary": summary,
        "ratios": ratios(summary),
        "errors": errors,
    }
    data = report.json_safe(data)
    report.write_results(args.out_dir, args.name, data, render_markdown)
    print(f"done in {data['meta']['elapsed_s']:.0f} s; {len(errors)} error(s)")
    return 1 if errors else 0
