"""The kinds of task the example service can run.

Each kind has a pydantic model for its ``params`` and a function
``run(params, report) -> result`` that runs in a worker thread. ``report(percent)``
records progress (an ``int`` from 0 to 100); the returned ``dict`` is stored as
the task's ``result``. To add a kind, write both and add it to :data:`KINDS`.
The task form shows the model's ``int`` and ``float`` fields, labelled with
their ``title`` and bounded by their ``ge``/``le`` (:mod:`app.tasks.parameters`):
a new kind needs no template edits.

Call ``report`` between steps, at least every second or so: it is also how a
task learns that it must stop -- the process is stopping, someone cancelled
it, or it ran past its kind's :attr:`TaskKind.time_limit`. ``report`` then
raises (:class:`app.tasks.execution.TaskStop` and its subclasses, which derive
from ``BaseException`` so that ``except Exception`` does not swallow them);
let it propagate (use ``finally`` to clean up). A kind that never calls
``report`` cannot be stopped by the in-process backend; the queue backend's
workers interrupt it a few seconds after its time limit (Dramatiq's
``TimeLimit``), and at shutdown give up on it after ``SHUTDOWN_TIMEOUT``.

Each kind runs *at least once* per enqueue: a worker that dies mid-task has
its attempt run again elsewhere (bounded by :attr:`TaskKind.max_attempts`).
Write kinds so that running one twice is harmless (idempotent), as with any
queue that promises at-least-once delivery (docs/tasks.md).
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
    steps: int = Field(10, ge=1, le=1000, title="Steps")
    delay: float = Field(0.2, ge=0, le=10, title="Seconds per step", description="seconds per step")


class PrimesParams(BaseModel):
    """``primes``: count the primes below ``limit`` (CPU-bound, segmented sieve)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    limit: int = Field(1_000_000, ge=2, le=50_000_000, title="Count primes below")


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
    """A runnable kind of task: its name, params model and function, and how it is run.

    :ivar name: the kind's name (``[a-z0-9_]``, at most 32 characters); also
        the Dramatiq actor's name, ``task.<name>``.
    :ivar params_model: the pydantic model of its ``params`` (strict, JSON types).
    :ivar run: ``run(params, report) -> result``; the result must be a JSON object.
    :ivar description: one line, shown on the task page.
    :ivar queue: the queue it is sent to with the queue backend (``manage.py
        worker --queues`` picks queues); ignored in process.
    :ivar time_limit: seconds an attempt may run; past it, ``report()`` raises
        and the task is recorded ``failed`` (not retried).
    :ivar max_attempts: attempts allowed, first one included (>= 1): a failing
        attempt (an exception, or its worker dying) is retried until then.
    :ivar retry_backoff: seconds before the first retry, doubled for each
        later one (at most :data:`MAX_RETRY_BACKOFF`).
    """

    name: str
    params_model: type[BaseModel]
    run: Callable[[Any, Report], dict[str, Any]]
    description: str
    queue: str = "default"
    time_limit: float = 300.0
    max_attempts: int = 3
    retry_backoff: float = 1.0

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before the attempt after ``attempt`` (1-based).

        ``retry_backoff * 2 ** (attempt - 1)``, at most :data:`MAX_RETRY_BACKOFF`.
        """
        return float(min(self.retry_backoff * 2 ** max(0, attempt - 1), MAX_RETRY_BACKOFF))


MAX_RETRY_BACKOFF = 300.0
"""Longest wait between two attempts, in seconds."""


KINDS: dict[str, TaskKind] = {
    "sleep": TaskKind(
        "sleep", SleepParams, run_sleep, "Sleep in steps (slow I/O stand-in)", time_limit=11_000
    ),
    "primes": TaskKind(
        "primes", PrimesParams, run_primes, "Count primes below a limit (CPU)", time_limit=600
    ),
}
"""Every kind, by name."""
