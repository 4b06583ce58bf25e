"""Benchmark scenarios S1-S8 (plus SN, the native route) and their metrics."""

from __future__ import annotations

import math
import threading
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
    processes: int = 1
    burst: int = 64
    block_ms: int = 200
    s4_blockers: int = 24
    s4_block_ms: int = 1000
    s4_connections: int = 8
    s7_burst: int = 160
    s7_block_ms: int = 100
    overload_factor: float = 10.0
    overload_grace: float = 10.0
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

    @property
    def ideal_s7_s(self) -> float:
        """The ideal S7 wall time: ceil(s7_burst / threads) x s7 block time."""
        return math.ceil(self.s7_burst / self.threads) * self.s7_block_ms / 1000.0

    @property
    def overload_rate(self) -> float:
        """S8 arrivals per second: ``overload_factor`` x what the pool serves of /block."""
        return self.overload_factor * self.threads / (self.block_ms / 1000.0)

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


def run_s7(ctx: Context) -> dict[str, float]:
    """S7: a burst the pool clears in about a second, at the server's default admission.

    ``s7_burst`` concurrent ``/block?ms=s7_block_ms`` requests (160 x 100 ms on 16
    threads: 10 waves, 1.0 s ideal).  Every request should get 200, in waves.
    """
    cfg = ctx.config
    res = clients.burst(ctx.server.port, f"/block?ms={cfg.s7_block_ms}", cfg.s7_burst)
    ideal = cfg.ideal_s7_s
    shed = res.statuses.get(503, 0)
    return {
        "served": float(res.ok),
        "shed": float(shed),
        "wall_s": res.wall_s if res.ok == cfg.s7_burst else max(res.latencies_s, default=0.0),
        "x_ideal": res.wall_s / ideal if ideal and res.ok == cfg.s7_burst else float("nan"),
        "errors": float(cfg.s7_burst - res.ok - shed),
    }


def run_s8(ctx: Context) -> dict[str, float]:
    """S8: sustained open-loop overload of ``/block``; shedding, /native p99 and RSS.

    ``overload_factor`` (10) x the pool's capacity of ``/block?ms=block_ms`` requests
    arrive per second for ``duration`` seconds, each on its own connection; open
    requests get ``overload_grace`` seconds more, then count as unfinished.  Servers
    with ``/native`` get its p99 measured by wrk idle and during the overload.
    """
    cfg = ctx.config
    has_native = NATIVE in ctx.server.spec.features
    native_url = ctx.url("/native")
    idle_p99 = float("nan")
    if has_native:
        idle_p99 = run_wrk(
            native_url, duration=cfg.duration, connections=cfg.s4_connections, cpu=ctx.client_cpu
        ).p99_ms
    box: dict[str, float] = {}

    def native_under_load() -> None:
        time.sleep(min(0.5, cfg.duration / 4))  # let the backlog form first
        res = run_wrk(
            native_url,
            duration=max(0.5, cfg.duration * 0.75),
            connections=cfg.s4_connections,
            cpu=ctx.client_cpu,
        )
        box["p99"] = res.p99_ms
        box["errors"] = float(res.non_2xx + res.socket_errors)

    rss_start = ctx.server.rss()
    thread = threading.Thread(target=native_under_load, name="s8-native", daemon=True)
    with RssSampler(ctx.server) as sampler:
        if has_native:
            thread.start()
        res = clients.overload(
            ctx.server.port,
            f"/block?ms={cfg.block_ms}",
            cfg.overload_rate,
            cfg.duration,
            grace=cfg.overload_grace,
        )
        if has_native:
            thread.join(cfg.duration + 30)
    rss_end = ctx.server.rss()
    sent = float(res.sent)
    loaded_p99 = box.get("p99", float("nan"))
    return {
        "offered_rps": cfg.overload_rate,
        "served_rps": res.ok / res.seconds if res.seconds > 0 else 0.0,
        "shed_share": res.shed / sent if sent else float("nan"),
        "unfinished_share": res.unfinished / sent if sent else float("nan"),
        "ok_p99_ms": clients.percentile(res.ok_latencies_s, 0.99) * 1000,
        "shed_p99_ms": clients.percentile(res.shed_latencies_s, 0.99) * 1000,
        "native_idle_p99_ms": idle_p99,
        "native_p99_ms": loaded_p99,
        "native_p99_ratio": loaded_p99 / idle_p99 if idle_p99 > 0 else float("nan"),
        "rss_start_mib": rss_start / clients.MIB,
        "rss_end_mib": rss_end / clients.MIB,
        "rss_growth_mib": sampler.growth_mib,
        "errors": float(res.other) + box.get("errors", 0.0),
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
            "S7",
            "burst the pool clears in ~1 s, default admission (GET /block)",
            frozenset({WSGI}),
            (
                Metric("served", "200s", "", True),
                Metric("shed", "503s", "", False),
                Metric("wall_s", "time to clear", "s", False),
                Metric("x_ideal", "x ideal", "x", False),
                ERR,
            ),
            "shed",
            run_s7,
        ),
        Scenario(
            "S8",
            "sustained 10x overload of GET /block (open loop), /native alongside",
            frozenset({WSGI}),
            (
                Metric("offered_rps", "offered", "req/s", True),
                Metric("served_rps", "served", "req/s", True),
                Metric("shed_share", "shed (503) share", "", True),
                Metric("unfinished_share", "unfinished share", "", False),
                Metric("ok_p99_ms", "200 p99", "ms", False),
                Metric("shed_p99_ms", "503 p99", "ms", False),
                Metric("native_idle_p99_ms", "/native idle p99", "ms", False),
                Metric("native_p99_ms", "/native p99", "ms", False),
                Metric("native_p99_ratio", "/native p99 loaded/idle", "x", False),
                Metric("rss_start_mib", "RSS start", "MiB", False),
                Metric("rss_end_mib", "RSS end", "MiB", False),
                Metric("rss_growth_mib", "peak RSS growth", "MiB", False),
                ERR,
            ),
            "ok_p99_ms",
            run_s8,
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
