"""Describe the machine and the versions of everything that was benchmarked."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys

import psutil

from benchmarks.servers import PROJECT_ROOT, SERVERS
from benchmarks.wrk import wrk_version

PACKAGES = (
    "tornado",
    "flask",
    "werkzeug",
    "gunicorn",
    "waitress",
    "uvicorn",
    "a2wsgi",
    "h11",
    "httptools",
    "uvloop",
    "psutil",
    "matplotlib",
    "pyinstrument",
)


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo (or platform's guess)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, str]:
    """CPU model, core counts, memory, kernel and OS of this machine."""
    try:
        affinity = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        affinity = "n/a"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return {
        "cpu_model": cpu_model(),
        "logical_cores": str(psutil.cpu_count(logical=True)),
        "physical_cores": str(psutil.cpu_count(logical=False)),
        "usable_cpus": affinity,
        "memory_gib": f"{psutil.virtual_memory().total / 2**30:.1f}",
        "kernel": platform.release(),
        "os": platform.platform(),
        "load_average_at_start": load,
    }


def git_commit() -> str:
    """The short commit of this checkout, or ``unknown``."""
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return proc.stdout.strip() or "unknown"


def _bridge_version() -> str:
    reason = SERVERS["hybrid"].check()
    if reason is not None:
        return f"unavailable ({reason})"
    code = "import wsgi_bridge; print(getattr(wsgi_bridge, '__version__', 'present'))"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return proc.stdout.strip() or "present"


def versions() -> dict[str, str]:
    """Versions of Python, the servers and libraries, wrk, and this project."""
    out = {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "wrk": wrk_version(),
    }
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    out["wsgi_bridge"] = _bridge_version()
    out["project_commit"] = git_commit()
    return out
