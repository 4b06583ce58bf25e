"""The shadow benchmark: ``python -m benchmarks.run shadow [options]``.

It measures what shadowing costs the primary path (issue 14): the service
(``manage.py serve``, ``APP_ENV=production``) answering ``GET /api/tasks/<id>`` (the
ported ``task_detail`` route, one existing task that has succeeded), **without** a
shadow (``off``, the reference) and **with** ``SHADOW_ROUTES=task_detail`` (``on``:
every request also runs the Flask view in the background and is compared), side by
side in one run. For each load (``--connections``, closed loop: each connection sends
its next request when the answer arrives) it reports the primary's p50 and p99
latency, the requests per second, and the ratio on/off of the medians; the goal is an
on/off ratio under 1.05 at p50.

Each side gets a fresh stack per round (a SQLite database migrated by ``manage.py db
upgrade``, then ``manage.py serve``; ``benchmarks/task_stack.py``), stopped by PID
afterwards. Sides are interleaved for ``--rounds`` rounds with the order swapped every
round; cells are medians over rounds [min-max]. After each measurement the server's own
``/metrics`` are read (``server/cutover/stats.py``): how many requests the native side
served and how many shadow runs were compared or skipped, so the report shows whether
the shadow really ran. The load is ``wrk`` when installed, else a small Python client
(keep-alive connections on threads). Nothing is pinned.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import math
import secrets
import shlex
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.clients import HOST, percentile
from benchmarks.machine import machine_info
from benchmarks.scenarios import Metric
from benchmarks.task_stack import Backend, ServiceStack
from benchmarks.tasks import task_versions
from benchmarks.wrk import run_wrk, wrk_path, wrk_version
from server.cutover.stats import scrape, summarize

RESULTS_DIR = Path(__file__).resolve().parent / "results"
ROUTE = "task_detail"
"""The ported route measured (the example's ``GET /api/tasks/<id>``)."""
REFERENCE = "off"
SIDES: dict[str, str] = {
    "off": "no cut-over setting: the native handler serves, nothing else runs",
    "on": f"SHADOW_ROUTES={ROUTE}: the native handler serves, and every GET also runs "
    "the Flask view in the background, compared with the native answer",
    "on-10": f"SHADOW_ROUTES={ROUTE}:10: as on, for a 10 % sample of the GETs",
}
"""Side -> what runs."""

SHADOW_SETTING = {"on": ROUTE, "on-10": f"{ROUTE}:10"}
"""Side -> its ``SHADOW_ROUTES`` (the reference side has none)."""

METRICS: tuple[Metric, ...] = (
    Metric("p50_ms", "p50", "ms", False),
    Metric("p99_ms", "p99", "ms", False),
    Metric("rps", "throughput", "req/s", True),
    Metric("errors", "errors", "", False),
    Metric("native", "native served", "", True),
    Metric("compared", "shadow compared", "", True),
    Metric("skipped", "shadow skipped", "", True),
)
RATIOED = ("p50_ms", "p99_ms", "rps")
TASK = {"kind": "sleep", "params": {"steps": 1, "delay": 0}}
"""The one task whose detail is read (finished before the measurement, so it does not change)."""


@dataclass
class ShadowBenchConfig:
    """Settings of one shadow benchmark run.

    :ivar duration: seconds of each measurement (per side, load and round).
    :ivar warmup: seconds of load before each measurement (not counted).
    :ivar connections: the loads: concurrent keep-alive connections, one measurement each.
    :ivar rounds: rounds of the interleaved sides.
    :ivar threads: ``THREADS`` of the server.
    :ivar client: ``wrk``, or ``python`` (the fallback when wrk is not installed).
    """

    duration: float = 10.0
    warmup: float = 2.0
    connections: tuple[int, ...] = (1, 8)
    rounds: int = 2
    threads: int = 16
    client: str = "wrk"

    def as_dict(self) -> dict[str, Any]:
        """The settings as a JSON-friendly dict."""
        out = asdict(self)
        out["connections"] = list(self.connections)
        return out


def _request(conn: http.client.HTTPConnection, method: str, path: str, body: Any = None) -> Any:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, path, json.dumps(body) if body is not None else None, headers)
    response = conn.getresponse()
    data = response.read()
    if response.status >= 300:
        raise RuntimeError(f"{method} {path}: {response.status} {data[:200]!r}")
    return json.loads(data)


def finished_task(port: int, timeout: float = 30.0) -> int:
    """Create one task and wait until it succeeded; return its id.

    :raises RuntimeError: it did not succeed within ``timeout`` seconds.
    """
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        task_id = int(_request(conn, "POST", "/api/tasks", TASK)["id"])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _request(conn, "GET", f"/api/tasks/{task_id}")["status"] == "succeeded":
                return task_id
            time.sleep(0.05)
    finally:
        conn.close()
    raise RuntimeError(f"task {task_id} did not succeed within {timeout:g} s")


def python_load(port: int, path: str, connections: int, duration: float) -> dict[str, float]:
    """Closed-loop ``GET path`` over ``connections`` keep-alive connections for ``duration``
    seconds (one thread each); p50/p99 in milliseconds, requests per second, errors."""
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors = [0] * connections
    stop_at = time.monotonic() + duration

    def client(index: int) -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=10)
        try:
            while time.monotonic() < stop_at:
                start = time.perf_counter()
                try:
                    conn.request("GET", path)
                    response = conn.getresponse()
                    response.read()
                except OSError:
                    errors[index] += 1
                    conn.close()
                    continue
                if response.status != 200:
                    errors[index] += 1
                latencies[index].append(time.perf_counter() - start)
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(duration + 30)
    every = [value for per_client in latencies for value in per_client]
    return {
        "p50_ms": percentile(every, 0.50) * 1000,
        "p99_ms": percentile(every, 0.99) * 1000,
        "rps": len(every) / duration,
        "errors": float(sum(errors)),
    }


def load(
    cfg: ShadowBenchConfig, port: int, path: str, connections: int, seconds: float
) -> dict[str, float]:
    """One measurement with the configured client (see :class:`ShadowBenchConfig`)."""
    if cfg.client == "python":
        return python_load(port, path, connections, seconds)
    result = run_wrk(f"http://{HOST}:{port}{path}", duration=seconds, connections=connections)
    return result.probe_figures()


def cutover_counts(port: int, token: str) -> dict[str, float]:
    """The server's own counts of :data:`ROUTE`: native requests, shadow runs compared, skipped."""
    rows = {row.route: row for row in summarize(scrape(f"http://{HOST}:{port}/metrics", token))}
    row = rows.get(ROUTE)
    if row is None:
        return {"native": 0.0, "compared": 0.0, "skipped": 0.0}
    compared = row.match + row.mismatch + row.error
    return {
        "native": float(row.native),
        "compared": float(compared),
        "skipped": float(row.skipped_total),
    }


Samples = dict[str, dict[str, dict[str, list[float]]]]
"""samples[load][side][metric] -> one value per round (load: ``c1``, ``c8``, ...)."""


def run_rounds(
    cfg: ShadowBenchConfig, log_dir: Path, log: Callable[[str], None] = print
) -> tuple[Samples, list[dict[str, Any]]]:
    """Every side for ``cfg.rounds`` rounds, interleaved; return the samples and errors."""
    sides = list(SIDES)
    samples: Samples = {}
    errors: list[dict[str, Any]] = []
    for rnd in range(cfg.rounds):
        order = sides if rnd % 2 == 0 else sides[::-1]
        for side in order:
            token = secrets.token_urlsafe(24)
            env = {"METRICS_TOKEN": token}
            if side in SHADOW_SETTING:
                env["SHADOW_ROUTES"] = SHADOW_SETTING[side]
            label = f"shadow-{side}-round{rnd + 1}"
            try:
                with (
                    tempfile.TemporaryDirectory(prefix="bench-shadow-") as work,
                    ServiceStack(
                        Backend("inprocess", 0),
                        threads=cfg.threads,
                        database_url=None,
                        work_dir=Path(work),
                        log_dir=log_dir,
                        label=label,
                        env=env,
                    ) as stack,
                ):
                    path = f"/api/tasks/{finished_task(stack.port)}"
                    for connections in cfg.connections:
                        t0 = time.monotonic()
                        before = cutover_counts(stack.port, token)
                        if cfg.warmup > 0:
                            load(cfg, stack.port, path, connections, cfg.warmup)
                        values = load(cfg, stack.port, path, connections, cfg.duration)
                        after = cutover_counts(stack.port, token)
                        values.update({k: after[k] - before[k] for k in after})
                        per_metric = samples.setdefault(f"c{connections}", {}).setdefault(side, {})
                        for key, value in values.items():
                            per_metric.setdefault(key, []).append(value)
                        log(
                            f"[round {rnd + 1}] shadow {side:<3} c{connections}: "
                            f"p50 {values['p50_ms']:.2f} ms, p99 {values['p99_ms']:.2f} ms, "
                            f"{values['rps']:.0f} req/s, shadow compared "
                            f"{values['compared']:.0f} ({time.monotonic() - t0:.1f} s)"
                        )
            except Exception as exc:  # record and go on with the next side
                msg = f"{type(exc).__name__}: {exc}"
                log(f"[round {rnd + 1}] shadow {side}: ERROR {msg}")
                errors.append({"round": rnd + 1, "side": side, "error": msg})
    ordered = {
        f"c{c}": {s: samples[f"c{c}"][s] for s in sides if s in samples.get(f"c{c}", {})}
        for c in cfg.connections
        if f"c{c}" in samples
    }
    return ordered, errors


def ratios(
    summary: dict[str, dict[str, dict[str, report.Stats]]],
) -> dict[str, dict[str, dict[str, float]]]:
    """``side / off`` of the medians, per load and shadowed side, for :data:`RATIOED`."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for load_name, by_side in summary.items():
        off = by_side.get(REFERENCE)
        if off is None:
            continue
        for side in SHADOW_SETTING:
            on = by_side.get(side)
            if on is None:
                continue
            row = {}
            for key in RATIOED:
                base = off.get(key, {}).get("median", math.nan)
                value = on.get(key, {}).get("median", math.nan)
                row[key] = value / base if base and math.isfinite(base) else math.nan
            out.setdefault(load_name, {})[side] = row
    return out


def render_markdown(data: dict[str, Any]) -> str:
    """The results as Markdown: settings, sides, the table per load, ratios, machine, versions."""
    meta, cfg = data["meta"], data["meta"]["config"]
    client = meta["versions"].get("wrk") if cfg["client"] == "wrk" else "a Python client"
    lines = [
        "# Shadow benchmark: the cost of SHADOW_ROUTES on the primary path",
        "",
        f"- Started {meta['started']}, took {meta['elapsed_s']:.0f} s",
        f"- Command: `{meta['command']}`",
        f"- Route: `GET /api/tasks/<id>` (`{ROUTE}`, ported), one task that has succeeded",
        f"- Rounds: {cfg['rounds']} (sides interleaved, order swapped every round; a fresh "
        "database and server per side and round)",
        f"- Load: closed loop over {', '.join(map(str, cfg['connections']))} keep-alive "
        f"connection(s), {cfg['warmup']:g} s warm-up then {cfg['duration']:g} s measured, "
        f"with {client}",
        f"- Service: `APP_ENV=production`, `THREADS={cfg['threads']}`, SQLite file; nothing "
        "pinned (the load and the server share the machine's CPUs)",
        "- native served, shadow compared / skipped: the server's own counters "
        "(`cutover_requests_total`, `shadow_comparisons_total`, `shadow_skipped_total`) over "
        "the warm-up and measurement",
        "- Cells: median over rounds [min-max]. Ratios: each shadowed side over off, of the "
        "medians; goal: p50 under 1.05x.",
        "",
        "## Sides",
        "",
    ]
    lines += report.md_table(["side", "what runs"], [[n, d] for n, d in meta["sides"].items()])
    for load_name, by_side in data["summary"].items():
        lines += ["", f"## {load_name[1:]} connection(s)", ""]
        header = ["side", *(report.metric_header(m) for m in METRICS)]
        rows = [
            [side, *(report.md_cell(by_metric.get(m.key)) for m in METRICS)]
            for side, by_metric in by_side.items()
        ]
        lines += report.md_table(header, rows)
        by_ratio = data["ratios"].get(load_name)
        if by_ratio:
            shown = [m for m in METRICS if m.key in RATIOED]
            lines += ["", "Ratio to off:", ""]
            lines += report.md_table(
                ["side", *(m.label for m in shown)],
                [
                    [side, *(report.md_ratio(ratio.get(m.key)) for m in shown)]
                    for side, ratio in by_ratio.items()
                ],
            )
    lines += report.md_closing_sections(meta, data["errors"], "side")
    return "\n".join(lines) + "\n"


def _counts(value: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of integers: {value!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("connection counts must be 1 or more")
    return tuple(dict.fromkeys(counts))


def build_parser() -> argparse.ArgumentParser:
    """The ``shadow`` sub-command's command-line interface."""
    d = ShadowBenchConfig()
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.run shadow",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--duration",
        type=float,
        default=d.duration,
        help=f"seconds measured (default {d.duration:g})",
    )
    p.add_argument(
        "--warmup", type=float, default=d.warmup, help=f"seconds of warm-up (default {d.warmup:g})"
    )
    p.add_argument(
        "--connections",
        type=_counts,
        default=d.connections,
        help="comma-separated connection counts, one load each (default 1,8)",
    )
    p.add_argument("--rounds", type=int, default=d.rounds, help=f"rounds (default {d.rounds})")
    p.add_argument("--threads", type=int, default=d.threads, help="THREADS of the server")
    p.add_argument(
        "--client",
        choices=("wrk", "python"),
        help="load generator (default wrk when installed, else python)",
    )
    p.add_argument("--out-dir", type=Path, default=RESULTS_DIR, help="where the reports go")
    p.add_argument(
        "--name", default="shadow-latest", help="base name of the reports (default shadow-latest)"
    )
    return p


def main(argv: Sequence[str]) -> int:
    """Run the shadow benchmark; 0 when every side ran, 1 if some failed."""
    parser = build_parser()
    args = parser.parse_args(argv)
    client = args.client or ("wrk" if wrk_path() is not None else "python")
    if client == "wrk" and wrk_path() is None:
        parser.error("wrk is not installed (apt-get install -y wrk); or --client python")
    cfg = ShadowBenchConfig(
        duration=args.duration,
        warmup=args.warmup,
        connections=args.connections,
        rounds=args.rounds,
        threads=args.threads,
        client=client,
    )
    if cfg.duration < 1 or cfg.warmup < 0 or cfg.rounds < 1 or cfg.threads < 1:
        parser.error(
            "--duration must be at least 1, --warmup 0 or more, --rounds and --threads 1 or more"
        )
    started = dt.datetime.now(dt.UTC)
    t0 = time.monotonic()
    print(
        f"benchmarking the shadow of {ROUTE}: {', '.join(SIDES)}; loads "
        f"{', '.join(f'c{c}' for c in cfg.connections)}; {cfg.rounds} round(s) with {client}",
        flush=True,
    )

    def log(msg: str) -> None:
        print(msg, flush=True)

    meta_machine = machine_info()
    samples, errors = run_rounds(cfg, args.out_dir / "raw", log=log)
    summary = {
        load_name: {
            side: {key: report.summarize(values) for key, values in metrics.items()}
            for side, metrics in by_side.items()
        }
        for load_name, by_side in samples.items()
    }
    versions = task_versions()
    versions["wrk"] = wrk_version()
    data: dict[str, Any] = {
        "meta": {
            "command": "python -m benchmarks.run shadow " + shlex.join(list(argv)),
            "started": started.isoformat(timespec="seconds"),
            "elapsed_s": time.monotonic() - t0,
            "config": cfg.as_dict(),
            "route": ROUTE,
            "sides": SIDES,
            "reference": REFERENCE,
            "machine": meta_machine,
            "versions": versions,
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
