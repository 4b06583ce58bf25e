"""Profile a benchmark server under pyinstrument while wrk drives S1 (``GET /hello``).

``python -m benchmarks.profile_bridge [--server hybrid] [--duration 10]`` writes
``benchmarks/results/profile-<server>-s1.txt``. pyinstrument samples the server's main
thread, i.e. the Tornado IOLoop and the bridge's glue code; the Flask work that runs in
the executor's threads is not sampled (use py-spy for a whole-process view).
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks.procs import ServerProcess, ServerStartError, pin_current_process, pinning_available
from benchmarks.servers import SERVERS
from benchmarks.wrk import WrkError, run_wrk, wrk_path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def profile_server(
    server: str = "hybrid",
    *,
    duration: float = 10.0,
    connections: int = 32,
    threads: int = 16,
    pinned: bool = True,
    out: Path | None = None,
    interval: float = 0.0005,
    show_all: bool = False,
) -> Path:
    """Run ``server`` under pyinstrument while wrk drives ``/hello``; return the profile path."""
    spec = SERVERS[server]
    reason = spec.check()
    if reason is not None:
        raise RuntimeError(f"server {server!r} is not available: {reason}")
    if wrk_path() is None:
        raise WrkError("wrk is not installed (apt-get install -y wrk)")
    out = out or RESULTS_DIR / f"profile-{server}-s1.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    pinned = pinned and pinning_available()
    wrapper = [
        "-m",
        "pyinstrument",
        "--renderer",
        "text",
        "--outfile",
        str(out.resolve()),
        "--no-color",
        "--interval",
        str(interval),
        *(["--show-all"] if show_all else ["--show", "*/tornado/*", "--show", "*/wsgi_bridge/*"]),
        "--target-description",
        f"benchmarks.servers ({server}) under wrk -c{connections} GET /hello, {duration:g} s",
    ]
    proc = ServerProcess(
        spec,
        threads=threads,
        cpu=0 if pinned else None,
        log_path=RESULTS_DIR / "raw" / f"profile-{server}.log",
        wrapper=wrapper,
        stop_signal=signal.SIGINT,
    )
    pin_current_process(1 if pinned else None)
    with proc:
        result = run_wrk(
            f"http://127.0.0.1:{proc.port}/hello",
            duration=duration,
            connections=connections,
            cpu=1 if pinned else None,
        )
    summary = (
        f"\n# wrk -t1 -c{connections} -d{duration:g}s GET /hello: "
        f"{result.requests_per_sec:.0f} req/s, p50 {result.p50_ms:.2f} ms, "
        f"p99 {result.p99_ms:.2f} ms (the profiler slows the server down)\n"
    )
    if not out.exists():
        raise RuntimeError(f"pyinstrument wrote no profile; see {proc.log_path}")
    with out.open("a") as fh:
        fh.write(summary)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.profile_bridge", description=__doc__
    )
    parser.add_argument("--server", default="hybrid", choices=sorted(SERVERS))
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--unpinned", action="store_true")
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--show-all", action="store_true", help="keep library frames (asyncio, tornado)"
    )
    args = parser.parse_args(argv)
    try:
        path = profile_server(
            args.server,
            duration=args.duration,
            connections=args.connections,
            pinned=not args.unpinned,
            out=args.out,
            show_all=args.show_all,
        )
    except (RuntimeError, ServerStartError, WrkError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
