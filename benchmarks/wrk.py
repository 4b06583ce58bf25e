"""Run ``wrk`` and parse its text output (with ``--latency``)."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import asdict, dataclass

_TIME_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_TIME_RE = r"([\d.]+)(us|ms|s|m|h)"


class WrkError(RuntimeError):
    """wrk is missing, failed, or printed something unparsable."""


@dataclass
class WrkResult:
    """The numbers taken from one wrk run (latencies in milliseconds)."""

    requests_per_sec: float
    requests: int
    duration_s: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: int

    def as_dict(self) -> dict[str, float]:
        """Return the fields as a flat dict of floats."""
        return {k: float(v) for k, v in asdict(self).items()}

    def probe_figures(self) -> dict[str, float]:
        """What a latency probe reports: ``p50_ms``, ``p99_ms``, ``rps`` and ``errors``
        (non-2xx answers plus socket errors)."""
        return {
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "rps": self.requests_per_sec,
            "errors": float(self.non_2xx + self.socket_errors),
        }


def wrk_path() -> str | None:
    """Return the path of the ``wrk`` executable, or None if it is not installed."""
    return shutil.which("wrk")


def wrk_version() -> str:
    """Return wrk's version line (``"missing"`` if not installed)."""
    path = wrk_path()
    if path is None:
        return "missing"
    proc = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    first = (proc.stdout or proc.stderr).strip().splitlines()
    return first[0].split(" Copyright")[0].strip() if first else "unknown"


def _ms(value: str, unit: str) -> float:
    return float(value) * _TIME_UNITS[unit]


def parse_wrk_output(text: str) -> WrkResult:
    """Parse wrk's ``--latency`` output into a :class:`WrkResult`."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in " + _TIME_RE, text)
    if not rps or not total:
        raise WrkError(f"cannot parse wrk output:\n{text}")
    pct = {p: _ms(v, u) for p, v, u in re.findall(r"^\s+(50|75|90|99)%\s+" + _TIME_RE, text, re.M)}
    lat = re.search(r"Latency\s+" + _TIME_RE + r"\s+" + _TIME_RE + r"\s+" + _TIME_RE, text)
    max_ms = _ms(lat.group(5), lat.group(6)) if lat else float("nan")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    nan = float("nan")
    return WrkResult(
        requests_per_sec=float(rps.group(1)),
        requests=int(total.group(1)),
        duration_s=_ms(total.group(2), total.group(3)) / 1000.0,
        p50_ms=pct.get("50", nan),
        p75_ms=pct.get("75", nan),
        p90_ms=pct.get("90", nan),
        p99_ms=pct.get("99", nan),
        max_ms=max_ms,
        non_2xx=int(non2xx.group(1)) if non2xx else 0,
        socket_errors=sum(int(g) for g in sock.groups()) if sock else 0,
    )


def run_wrk(
    url: str,
    *,
    duration: float,
    connections: int = 32,
    threads: int = 1,
    cpu: int | None = None,
    timeout_s: float = 5.0,
) -> WrkResult:
    """Run wrk against ``url`` for ``duration`` seconds (pinned to ``cpu`` if given)."""
    path = wrk_path()
    if path is None:
        raise WrkError("wrk is not installed (apt-get install -y wrk)")
    seconds = max(1, round(duration))
    cmd = [
        path,
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{seconds}s",
        "--timeout",
        f"{max(1, round(timeout_s))}s",
        "--latency",
        url,
    ]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=seconds + 30, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise WrkError(f"wrk did not finish: {' '.join(cmd)}") from exc
    if proc.returncode != 0:
        raise WrkError(f"wrk exited with {proc.returncode}: {proc.stderr.strip()}")
    return parse_wrk_output(proc.stdout)
