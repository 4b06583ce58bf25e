"""The kinds of task the example service can run.

Each kind has a pydantic model for its ``params`` and a function
``run(params, report) -> result`` that runs in a worker thread. ``report(percent)``
records progress (an ``int`` from 0 to 100); the returned ``dict`` is stored as
the task's ``result``. To add a kind, write both and add it to :data:`KINDS`.

Call ``report`` between steps, at least every second or so: it is also how a
task learns that the server is stopping. Once it is, ``report`` raises
:class:`app.tasks.runner.TaskInterrupted`; let it propagate (use ``finally``
to clean up) and the task is recorded ``interrupted``. A kind that never
calls ``report`` cannot be stopped: at shutdown the server gives up on its
thread after ``SHUTDOWN_TIMEOUT`` seconds and exits anyway.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

Report = Callable[[int], None]
"""``report(percent)``: record progress, 0 to 100; raises ``TaskInterrupted`` once stopping."""


class SleepParams(BaseModel):
    """``sleep``: wait ``steps`` x ``delay`` seconds, reporting after each step."""

    model_config = ConfigDict(extra="forbid", strict=True)
    steps: int = Field(10, ge=1, le=1000)
    delay: float = Field(0.2, ge=0, le=10, description="seconds per step")


class PrimesParams(BaseModel):
    """``primes``: count the primes below ``limit`` (CPU-bound, segmented sieve)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    limit: int = Field(1_000_000, ge=2, le=50_000_000)


def run_sleep(params: SleepParams, report: Report) -> dict[str, Any]:
    """Sleep step by step; a stand-in for slow I/O such as calling another service."""
    for step in range(1, params.steps + 1):
        time.sleep(params.delay)
        report(step * 100 // params.steps)
    return {"slept_seconds": round(params.steps * params.delay, 3)}


def run_primes(params: PrimesParams, report: Report) -> dict[str, Any]:
    """Count primes below ``params.limit`` with a segmented sieve of Eratosthenes."""
    limit = params.limit
    root = math.isqrt(limit) + 1
    small = bytearray([1]) * root
    small[0:2] = b"\x00\x00"
    for i in range(2, math.isqrt(root) + 1):
        if small[i]:
            small[i * i :: i] = bytes(len(range(i * i, root, i)))
    base_primes = [i for i in range(2, root) if small[i]]
    count = 0
    segment = max(root, 1 << 16)
    for low in range(0, limit, segment):
        high = min(low + segment, limit)
        sieve = bytearray([1]) * (high - low)
        for p in base_primes:
            start = max(p * p, (low + p - 1) // p * p)
            if start >= high:
                continue
            sieve[start - low :: p] = bytes(len(range(start, high, p)))
        for n in range(low, min(low + 2, high)):
            if n < 2:
                sieve[n - low] = 0
        count += sum(sieve)
        report(high * 100 // limit)
    return {"count": count, "limit": limit}


@dataclass(frozen=True)
class TaskKind:
    """A runnable kind of task: its name, params model and function."""

    name: str
    params_model: type[BaseModel]
    run: Callable[[Any, Report], dict[str, Any]]
    description: str


KINDS: dict[str, TaskKind] = {
    "sleep": TaskKind("sleep", SleepParams, run_sleep, "Sleep in steps (slow I/O stand-in)"),
    "primes": TaskKind("primes", PrimesParams, run_primes, "Count primes below a limit (CPU)"),
}
"""Every kind, by name."""
