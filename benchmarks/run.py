"""Run the benchmark suite: ``python -m benchmarks.run [--quick] [options]``.

Every selected server is started as a subprocess (pinned to CPU 0 unless ``--unpinned``),
the selected scenarios run against it, and it is stopped by PID; servers are interleaved
(A B C … A B C …) for several rounds, with the order rotated every round. The results go
to ``benchmarks/results/latest.{md,json,png}``.

``python -m benchmarks.run tasks [options]`` runs the task-queue benchmark instead: enqueue
throughput and enqueue-to-WebSocket latency, in process vs on the queue with 1, 2, ...
workers (``benchmarks/tasks.py``; ``python -m benchmarks.run tasks --help``).

``python -m benchmarks.run shadow [options]`` measures what ``SHADOW_ROUTES`` costs the
primary path: p50/p99 of a ported route with the shadow on against off
(``benchmarks/shadow.py``; ``python -m benchmarks.run shadow --help``).

``python -m benchmarks.run lane [options]`` measures a native route's blocking database
call (``GET /api/stats``) while Flask views saturate the shared pool (issue 15;
``benchmarks/lane.py``; ``python -m benchmarks.run lane --help``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import lane, report, shadow, tasks
from benchmarks.machine import machine_info, versions
from benchmarks.procs import ServerProcess, ServerStartError, pin_current_process, pinning_available
from benchmarks.scenarios import SCENARIOS, BenchConfig, Context, settle
from benchmarks.servers import DEFAULT_SERVERS, PROJECT_ROOT, SERVERS
from benchmarks.wrk import wrk_path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DOC_PATH = PROJECT_ROOT / "docs" / "benchmarks.md"


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def build_parser() -> argparse.ArgumentParser:
    """The runner's command-line interface."""
    d = BenchConfig()
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="short development run: 1 round, 1 s measurements, 32 MiB transfers",
    )
    p.add_argument("--rounds", type=int, help=f"rounds (default {d.rounds})")
    p.add_argument(
        "--duration", type=float, help=f"seconds per wrk measurement (default {d.duration:g})"
    )
    p.add_argument("--warmup", type=float, help=f"wrk warm-up seconds (default {d.warmup:g})")
    p.add_argument("--stream-mb", type=float, help=f"S5 size in MiB (default {d.stream_mb:g})")
    p.add_argument("--upload-mb", type=float, help=f"S6 size in MiB (default {d.upload_mb:g})")
    p.add_argument("--threads", type=int, default=d.threads, help="WSGI threads per server")
    p.add_argument(
        "--processes",
        type=int,
        default=d.processes,
        help="server processes (workers) per server; above 1, servers run unpinned and "
        "single-process servers are left out",
    )
    p.add_argument(
        "--scenarios",
        type=_csv,
        default=list(SCENARIOS),
        help=f"comma-separated subset of {','.join(SCENARIOS)}",
    )
    p.add_argument(
        "--servers",
        type=_csv,
        default=list(DEFAULT_SERVERS),
        help=f"comma-separated subset of {','.join(SERVERS)}",
    )
    p.add_argument(
        "--reference",
        default="hybrid",
        help="server the ratios and targets are computed for (default hybrid)",
    )
    p.add_argument("--unpinned", action="store_true", help="do not pin servers/load to CPUs")
    p.add_argument(
        "--skip-unavailable",
        action="store_true",
        help="drop servers whose availability check fails instead of exiting",
    )
    p.add_argument("--out-dir", type=Path, default=RESULTS_DIR, help="where latest.* go")
    p.add_argument("--no-png", action="store_true", help="do not draw latest.png")
    p.add_argument(
        "--update-docs",
        action="store_true",
        help="also embed the results in docs/benchmarks.md (full runs only)",
    )
    return p


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    """Turn parsed arguments into a :class:`BenchConfig` (``--quick`` sets short values)."""
    cfg = BenchConfig(threads=args.threads, processes=args.processes)
    if args.quick:
        cfg.rounds, cfg.duration, cfg.warmup = 1, 1.0, 1.0
        cfg.stream_mb, cfg.upload_mb = 32.0, 32.0
        cfg.s4_block_ms = 500
    for name in ("rounds", "duration", "warmup", "stream_mb", "upload_mb"):
        value = getattr(args, name)
        if value is not None:
            setattr(cfg, name, value)
    cfg.pinned = not args.unpinned
    return cfg


def run_benchmarks(
    cfg: BenchConfig,
    servers: Sequence[str],
    scenarios: Sequence[str],
    log_dir: Path,
    log: Any = print,
) -> tuple[report.Samples, list[dict[str, Any]]]:
    """Run all rounds; return the samples and the list of errors."""
    samples: report.Samples = {}
    errors: list[dict[str, Any]] = []
    # Several server processes get every CPU: pinned to one they could not run in parallel.
    server_cpu = cfg.server_cpu if cfg.pinned and cfg.processes == 1 else None
    for rnd in range(cfg.rounds):
        shift = rnd % len(servers)
        order = list(servers[shift:]) + list(servers[:shift])
        for name in order:
            spec = SERVERS[name]
            todo = [s for s in scenarios if SCENARIOS[s].requires <= spec.features]
            if not todo:
                continue
            server = ServerProcess(
                spec,
                threads=cfg.threads,
                cpu=server_cpu,
                log_path=log_dir / f"{name}-round{rnd + 1}.log",
                processes=cfg.processes,
            )
            try:
                server.start()
            except ServerStartError as exc:
                log(f"[round {rnd + 1}] {name}: FAILED TO START: {exc}")
                errors.append(
                    {"round": rnd + 1, "server": name, "scenario": "start", "error": str(exc)}
                )
                continue
            try:
                for scen_id in todo:
                    t0 = time.monotonic()
                    try:
                        values = SCENARIOS[scen_id].run(Context(server, cfg))
                    except Exception as exc:  # record and go on with the next scenario
                        msg = f"{type(exc).__name__}: {exc}"
                        log(f"[round {rnd + 1}] {name} {scen_id}: ERROR {msg}")
                        errors.append(
                            {"round": rnd + 1, "server": name, "scenario": scen_id, "error": msg}
                        )
                        if server.proc is None or server.proc.poll() is not None:
                            log(f"[round {rnd + 1}] {name}: server died, skipping its round")
                            break
                        continue
                    per_metric = samples.setdefault(scen_id, {}).setdefault(name, {})
                    for key, value in values.items():
                        per_metric.setdefault(key, []).append(value)
                    primary = SCENARIOS[scen_id].primary
                    log(
                        f"[round {rnd + 1}] {name:<17} {scen_id}: "
                        f"{primary}={values.get(primary, float('nan')):.4g} "
                        f"errors={values.get('errors', 0):g} ({time.monotonic() - t0:.1f} s)"
                    )
                    settle()
            finally:
                server.stop()
    return _ordered(samples, servers), errors


def _ordered(samples: report.Samples, servers: Sequence[str]) -> report.Samples:
    return {
        scen: {s: samples[scen][s] for s in servers if s in samples[scen]}
        for scen in SCENARIOS
        if scen in samples
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code.

    ``tasks`` as the first argument runs the task-queue benchmark instead
    (:mod:`benchmarks.tasks`, ``python -m benchmarks.run tasks --help``); ``shadow``
    the shadow's cost (:mod:`benchmarks.shadow`); ``lane`` a native route's database
    call while Flask saturates the pool (:mod:`benchmarks.lane`).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["tasks"]:
        return tasks.main(argv[1:])
    if argv[:1] == ["shadow"]:
        return shadow.main(argv[1:])
    if argv[:1] == ["lane"]:
        return lane.main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    unknown = [s for s in args.servers if s not in SERVERS]
    unknown += [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown server or scenario: {', '.join(unknown)}")
    if cfg.rounds < 1 or cfg.duration < 1:
        parser.error("--rounds and --duration must be at least 1")
    if cfg.processes < 1:
        parser.error("--processes must be at least 1")
    if any(SCENARIOS[s].uses_wrk for s in args.scenarios) and wrk_path() is None:
        print("error: wrk is not installed; apt-get install -y wrk", file=sys.stderr)
        return 2
    if cfg.pinned and not pinning_available():
        print("warning: CPUs 0 and 1 or taskset unavailable; running unpinned", file=sys.stderr)
        cfg.pinned = False

    servers = list(dict.fromkeys(args.servers))
    skipped: dict[str, str] = {}
    if cfg.processes != 1:
        for name in [s for s in servers if not SERVERS[s].multiprocess]:
            print(f"warning: skipping {name}: it runs one process only", file=sys.stderr)
            skipped[name] = "runs one process only"
            servers.remove(name)
    for name in list(servers):
        reason = SERVERS[name].check()
        if reason is None:
            continue
        if not args.skip_unavailable:
            print(
                f"error: server {name!r} is not available: {reason}\n"
                f"  ({SERVERS[name].description})\n"
                "  Leave it out with --servers, or pass --skip-unavailable.",
                file=sys.stderr,
            )
            return 2
        print(f"warning: skipping {name}: {reason}", file=sys.stderr)
        skipped[name] = reason
        servers.remove(name)
    if not servers:
        print("error: no server left to benchmark", file=sys.stderr)
        return 2

    meta_machine, meta_versions = machine_info(), versions()
    pin_current_process(cfg.client_cpu if cfg.pinned else None)
    started = dt.datetime.now(dt.UTC)
    t0 = time.monotonic()
    command = "python -m benchmarks.run " + shlex.join(argv)
    print(
        f"benchmarking {', '.join(servers)} x {', '.join(args.scenarios)}, "
        f"{cfg.rounds} round(s), {'pinned' if cfg.pinned else 'unpinned'}",
        flush=True,
    )

    def log(msg: str) -> None:
        print(msg, flush=True)

    samples, errors = run_benchmarks(cfg, servers, args.scenarios, args.out_dir / "raw", log=log)
    summary = report.summarize_all(samples)
    reference = args.reference
    data: dict[str, Any] = {
        "meta": {
            "mode": "full" if cfg.is_full() else "quick",
            "command": command.strip(),
            "started": started.isoformat(timespec="seconds"),
            "elapsed_s": time.monotonic() - t0,
            "config": cfg.as_dict(),
            "ideal_burst_s": cfg.ideal_burst_s,
            "servers": servers,
            "scenarios": list(args.scenarios),
            "reference": reference,
            "skipped": skipped,
            "machine": meta_machine,
            "versions": meta_versions,
        },
        "samples": samples,
        "summary": summary,
        "ratios": report.ratios(summary, reference),
        "targets": [t.evaluate(summary, reference) for t in report.default_targets(reference)],
        "errors": errors,
    }
    data = report.json_safe(data)
    paths = report.write_reports(data, args.out_dir, png=not args.no_png)
    for kind, path in paths.items():
        print(f"wrote {kind}: {path}")
    if args.update_docs:
        if data["meta"]["mode"] != "full":
            print("not updating docs: only full runs go into docs/benchmarks.md", file=sys.stderr)
        else:
            report.update_doc(DOC_PATH, paths["md"].read_text())
            print(f"updated {DOC_PATH}")
    print(f"done in {data['meta']['elapsed_s']:.0f} s; {len(errors)} error(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
