"""Benchmark scenarios S1-S6 (plus SN, the native route) and their metrics."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from benchmarks import clients
from benchmarks.procs import RssSampler, ServerProcess
from benchmarks.servers import NATIVE, SIMPLE, WSGI
from benchmarks.wrk import run_wrk


@dataclass
class BenchConfig:
    """Settings of one benchmark run (defaults = a full run)."""

    rounds: int = 5
    duration: float = 5.0
    warmup: float = 1.0
    connections: int = 32
    wrk_threads: int = 1
    threads: int = 16
    burst: int = 64
    block_ms: int = 200
    s4_blockers: int = 24
    s4_block_ms: int = 1000
    s4_connections: int = 8
    stream_mb: float = 512.0
    upload_mb: float = 256.0
    transfer_timeout: float = 120.0
    pinned: bool = True
    server_cpu: int = 0
    client_cpu: int = 1

    @property
    def ideal_burst_s(self) -> float:
        """The ideal S3 wall time: ceil(burst / threads) x block time."""
        return math.ceil(self.burst / self.threads) * self.block_ms / 1000.0

    def as_dict(self) -> dict[str, object]:
        """The settings as a JSON-friendly dict."""
        return asdict(self)

    def is_full(self) -> bool:
        """True if the workload settings are the full-run defaults (and pinned)."""
        default = BenchConfig()
        keys = [k for k in asdict(default) if k not in ("pinned", "server_cpu", "client_cpu")]
        same = all(getattr(self, k) == getattr(default, k) for k in keys)
        return same and self.pinned


@dataclass(frozen=True)
class Metric:
    """One reported number of a scenario."""

    key: str
    label: str
    unit: str
    higher_is_better: bool


@dataclass
class Context:
    """What a scenario gets: the running server and the run settings."""

    server: ServerProcess
    config: BenchConfig

    @property
    def client_cpu(self) -> int | None:
        """CPU for the load generator, or None when unpinned."""
        return self.config.client_cpu if self.config.pinned else None

    def url(self, path: str) -> str:
        """Absolute URL of ``path`` on the server."""
        return f"http://127.0.0.1:{self.server.port}{path}"


@dataclass(frozen=True)
class Scenario:
    """A named workload, the server features it needs, and its metrics."""

    id: str
    title: str
    requires: frozenset[str]
    metrics: tuple[Metric, ...]
    primary: str
    run: Callable[[Context], dict[str, float]]
    uses_wrk: bool = False
    notes: str = field(default="")


RPS = Metric("rps", "req/s", "req/s", True)
P50 = Metric("p50_ms", "p50", "ms", False)
P99 = Metric("p99_ms", "p99", "ms", False)
ERR = Metric("errors", "errors", "", False)


def _wrk_scenario(path: str) -> Callable[[Context], dict[str, float]]:
    def _run(ctx: Context) -> dict[str, float]:
        cfg = ctx.config
        if cfg.warmup > 0:
            run_wrk(
                ctx.url(path),
                duration=cfg.warmup,
                connections=cfg.connections,
                threads=cfg.wrk_threads,
                cpu=ctx.client_cpu,
            )
        res = run_wrk(
            ctx.url(path),
            duration=cfg.duration,
            connections=cfg.connections,
            threads=cfg.wrk_threads,
            cpu=ctx.client_cpu,
        )
        return {
            "rps": res.requests_per_sec,
            "p50_ms": res.p50_ms,
            "p99_ms": res.p99_ms,
            "errors": float(res.non_2xx + res.socket_errors),
        }

    return _run


def run_s3(ctx: Context) -> dict[str, float]:
    """S3: a burst of concurrent ``/block`` requests; wall time against the ideal."""
    cfg = ctx.config
    res = clients.burst(ctx.server.port, f"/block?ms={cfg.block_ms}", cfg.burst)
    ideal = cfg.ideal_burst_s
    return {
        "wall_s": res.wall_s,
        "x_ideal": res.wall_s / ideal if ideal else float("nan"),
        "errors": float(res.failed),
    }


def run_s4(ctx: Context) -> dict[str, float]:
    """S4: ``/native`` latency when idle, then with all WSGI threads blocked."""
    cfg = ctx.config
    url = ctx.url("/native")

    def measure() -> tuple[float, float, float, float]:
        res = run_wrk(
            url,
            duration=cfg.duration,
            connections=cfg.s4_connections,
            threads=1,
            cpu=ctx.client_cpu,
        )
        return res.p50_ms, res.p99_ms, res.requests_per_sec, res.non_2xx + res.socket_errors

    if cfg.warmup > 0:
        run_wrk(url, duration=cfg.warmup, connections=cfg.s4_connections, cpu=ctx.client_cpu)
    idle_p50, idle_p99, idle_rps, idle_err = measure()
    blockers = clients.Blockers(
        ctx.server.port,
        cfg.s4_blockers,
        cfg.s4_block_ms,
        max_seconds=cfg.duration + 10.0,
    )
    blockers.start(settle_s=0.3)
    try:
        in_flight = blockers.in_flight
        load_p50, load_p99, load_rps, load_err = measure()
    finally:
        blockers.stop()
    return {
        "idle_p50_ms": idle_p50,
        "idle_p99_ms": idle_p99,
        "loaded_p50_ms": load_p50,
        "loaded_p99_ms": load_p99,
        "p99_ratio": load_p99 / idle_p99 if idle_p99 > 0 else float("nan"),
        "loaded_rps_ratio": load_rps / idle_rps if idle_rps > 0 else float("nan"),
        "blocked_in_flight": float(in_flight),
        "blocked_done": float(blockers.completed),
        "errors": float(idle_err + load_err + blockers.errors),
    }


def run_s5(ctx: Context) -> dict[str, float]:
    """S5: one large streamed download; first byte, rate, and peak RSS growth."""
    cfg = ctx.config
    with RssSampler(ctx.server) as sampler:
        res = clients.stream_download(ctx.server.port, cfg.stream_mb, cfg.transfer_timeout)
    expected = int(cfg.stream_mb * clients.MIB)
    return {
        "ttfb_ms": res.ttfb_ms,
        "mib_s": res.mib_per_s,
        "seconds": res.seconds,
        "rss_growth_mib": sampler.growth_mib,
        "errors": float(res.status != 200 or res.nbytes != expected),
    }


def run_s6(ctx: Context) -> dict[str, float]:
    """S6: one large upload sent in 64 KiB pieces; time and peak RSS growth."""
    cfg = ctx.config
    with RssSampler(ctx.server) as sampler:
        res = clients.upload(ctx.server.port, cfg.upload_mb, cfg.transfer_timeout)
    expected = int(cfg.upload_mb * clients.MIB)
    return {
        "seconds": res.seconds,
        "mib_s": expected / clients.MIB / res.seconds if res.seconds > 0 else 0.0,
        "rss_growth_mib": sampler.growth_mib,
        "errors": float(res.status != 200 or res.nbytes != expected),
    }


SCENARIOS: dict[str, Scenario] = {
    s.id: s
    for s in (
        Scenario(
            "S1",
            "GET /hello (wrk)",
            frozenset({SIMPLE}),
            (RPS, P50, P99, ERR),
            "rps",
            _wrk_scenario("/hello"),
            uses_wrk=True,
        ),
        Scenario(
            "S2",
            "GET /json (wrk)",
            frozenset({SIMPLE}),
            (RPS, P50, P99, ERR),
            "rps",
            _wrk_scenario("/json"),
            uses_wrk=True,
        ),
        Scenario(
            "SN",
            "GET /native, native Tornado route (wrk)",
            frozenset({NATIVE}),
            (RPS, P50, P99, ERR),
            "rps",
            _wrk_scenario("/native"),
            uses_wrk=True,
        ),
        Scenario(
            "S3",
            "burst of concurrent GET /block",
            frozenset({WSGI}),
            (
                Metric("wall_s", "wall", "s", False),
                Metric("x_ideal", "x ideal", "x", False),
                ERR,
            ),
            "wall_s",
            run_s3,
        ),
        Scenario(
            "S4",
            "GET /native idle vs all WSGI threads blocked (wrk)",
            frozenset({WSGI, NATIVE}),
            (
                Metric("idle_p50_ms", "idle p50", "ms", False),
                Metric("idle_p99_ms", "idle p99", "ms", False),
                Metric("loaded_p50_ms", "loaded p50", "ms", False),
                Metric("loaded_p99_ms", "loaded p99", "ms", False),
                Metric("p99_ratio", "p99 loaded/idle", "x", False),
                Metric("loaded_rps_ratio", "req/s loaded/idle", "x", True),
                Metric("blocked_in_flight", "blocked in flight", "", True),
                ERR,
            ),
            "loaded_p99_ms",
            run_s4,
            uses_wrk=True,
        ),
        Scenario(
            "S5",
            "streamed download GET /stream",
            frozenset({WSGI}),
            (
                Metric("ttfb_ms", "first byte", "ms", False),
                Metric("mib_s", "rate", "MiB/s", True),
                Metric("rss_growth_mib", "peak RSS growth", "MiB", False),
                ERR,
            ),
            "mib_s",
            run_s5,
        ),
        Scenario(
            "S6",
            "upload POST /upload in 64 KiB pieces",
            frozenset({WSGI}),
            (
                Metric("seconds", "time", "s", False),
                Metric("mib_s", "rate", "MiB/s", True),
                Metric("rss_growth_mib", "peak RSS growth", "MiB", False),
                ERR,
            ),
            "seconds",
            run_s6,
        ),
    )
}

DEFAULT_SCENARIOS: tuple[str, ...] = tuple(SCENARIOS)


def settle(seconds: float = 0.2) -> None:
    """Short pause between scenarios so sockets in TIME_WAIT and queues drain."""
    time.sleep(seconds)
