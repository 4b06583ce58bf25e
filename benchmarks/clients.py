"""Small, bounded Python load clients for what wrk does not cover.

Every client talks only to ``127.0.0.1``, has socket timeouts, and stops by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import threading
import time
from dataclasses import dataclass, field

CHUNK_SIZE = 64 * 1024
MIB = 1024 * 1024
HOST = "127.0.0.1"


# --------------------------------------------------------------------------- burst (S3)


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, int]:
    """Read one HTTP/1.1 response; return (status, body length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
        return status, len(body)
    if "chunked" in headers.get("transfer-encoding", "").lower():
        size = 0
        while True:
            n = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if n == 0:
                await reader.readuntil(b"\r\n")
                return status, size
            size += len(await reader.readexactly(n + 2)) - 2
    return status, len(await reader.read())


async def _one_request(path: str, port: int, t0: float) -> tuple[int, float]:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        status, _ = await _read_response(reader)
        return status, time.perf_counter() - t0
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


@dataclass
class BurstResult:
    """Outcome of a burst of concurrent requests."""

    wall_s: float
    ok: int
    failed: int
    latencies_s: list[float] = field(default_factory=list)
    #: Responses by status code (503 = shed by admission); connection errors absent.
    statuses: dict[int, int] = field(default_factory=dict)


def burst(port: int, path: str, count: int, timeout: float = 60.0) -> BurstResult:
    """Send ``count`` concurrent GET requests (one connection each) and time the lot."""

    async def _main() -> BurstResult:
        t0 = time.perf_counter()
        tasks = [asyncio.ensure_future(_one_request(path, port, t0)) for _ in range(count)]
        done, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        wall = time.perf_counter() - t0
        lat: list[float] = []
        statuses: dict[int, int] = {}
        ok = 0
        for task in done:
            if task.exception() is None:
                status, elapsed = task.result()
                statuses[status] = statuses.get(status, 0) + 1
                if status == 200:
                    lat.append(elapsed)
                    ok += 1
        if ok == count:
            wall = max(lat)
        return BurstResult(
            wall_s=wall, ok=ok, failed=count - ok, latencies_s=sorted(lat), statuses=statuses
        )

    return asyncio.run(_main())


# ------------------------------------------------------------- open-loop overload (S8)


@dataclass
class OverloadResult:
    """Outcome of an open-loop run at a fixed arrival rate (see :func:`overload`)."""

    sent: int
    ok: int
    shed: int
    other: int
    unfinished: int
    seconds: float
    ok_latencies_s: list[float] = field(default_factory=list)
    shed_latencies_s: list[float] = field(default_factory=list)


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1, nearest rank) of ``values``; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def overload(
    port: int,
    path: str,
    rate: float,
    duration: float,
    grace: float = 10.0,
    max_outstanding: int = 4000,
) -> OverloadResult:
    """Open-loop load: start ``rate`` requests per second for ``duration`` seconds.

    Each request uses its own connection (``Connection: close``) and starts on
    schedule whatever happened to the earlier ones, as independent clients do; so a
    server that queues instead of refusing builds a backlog.  After ``duration``, the
    requests still open get ``grace`` seconds, then are cancelled and counted as
    ``unfinished`` (as are arrivals beyond ``max_outstanding`` open requests).

    :param rate: arrivals per second.
    :param duration: seconds of arrivals.
    :param grace: seconds to wait for open requests after the last arrival.
    :returns: counts by outcome (200, 503, other status or error, unfinished) and
        the latencies in seconds of the 200s and of the 503s.
    """

    outstanding = 0

    async def _one(t0: float) -> tuple[int, float]:
        nonlocal outstanding
        outstanding += 1
        try:
            status, _ = await _one_request(path, port, t0)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            status = 0
        finally:
            outstanding -= 1
        return status, time.perf_counter() - t0

    async def _main() -> OverloadResult:
        tasks: list[asyncio.Task[tuple[int, float]]] = []
        skipped = 0
        start = time.perf_counter()
        total = int(rate * duration)
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            await asyncio.sleep(max(0.0, delay))  # 0: still let the open requests run
            if outstanding >= max_outstanding:
                skipped += 1
                continue
            tasks.append(asyncio.ensure_future(_one(time.perf_counter())))
        pending = [t for t in tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=grace)
        for task in tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        seconds = time.perf_counter() - start
        ok_lat: list[float] = []
        shed_lat: list[float] = []
        other = unfinished = 0
        for task in tasks:
            if task.cancelled():
                unfinished += 1
                continue
            status, elapsed = task.result()
            if status == 200:
                ok_lat.append(elapsed)
            elif status == 503:
                shed_lat.append(elapsed)
            else:
                other += 1
        return OverloadResult(
            sent=len(tasks),
            ok=len(ok_lat),
            shed=len(shed_lat),
            other=other,
            unfinished=unfinished + skipped,
            seconds=seconds,
            ok_latencies_s=ok_lat,
            shed_latencies_s=shed_lat,
        )

    return asyncio.run(_main())


# ----------------------------------------------------------------------- blockers (S4)


class Blockers:
    """Keep ``count`` requests to ``/block?ms=...`` in flight until stopped.

    Each of ``count`` threads loops over blocking requests on its own connection; the
    loop ends when :meth:`stop` is called or after ``max_seconds``.
    """

    def __init__(self, port: int, count: int, block_ms: int, max_seconds: float) -> None:
        self.port = port
        self.block_ms = block_ms
        self.deadline = time.monotonic() + max_seconds
        self.completed = 0
        self.errors = 0
        self.in_flight = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, name=f"blocker-{i}", daemon=True)
            for i in range(count)
        ]

    def _loop(self) -> None:
        conn = http.client.HTTPConnection(HOST, self.port, timeout=self.block_ms / 1000 + 30)
        try:
            while not self._stop.is_set() and time.monotonic() < self.deadline:
                with self._lock:
                    self.in_flight += 1
                try:
                    conn.request("GET", f"/block?ms={self.block_ms}")
                    resp = conn.getresponse()
                    resp.read()
                    ok = resp.status == 200
                except (OSError, http.client.HTTPException):
                    ok = False
                    conn.close()
                finally:
                    with self._lock:
                        self.in_flight -= 1
                with self._lock:
                    if ok:
                        self.completed += 1
                    else:
                        self.errors += 1
        finally:
            conn.close()

    def start(self, settle_s: float = 0.3) -> None:
        """Start the threads and wait ``settle_s`` for the requests to reach the server."""
        for thread in self._threads:
            thread.start()
        time.sleep(settle_s)

    def stop(self) -> None:
        """Ask the threads to stop and wait for their last request to finish."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.block_ms / 1000 + 35)


# ------------------------------------------------------------------ streaming (S5, S6)


@dataclass
class TransferResult:
    """Outcome of one large download or upload."""

    status: int
    nbytes: int
    seconds: float
    ttfb_ms: float = float("nan")

    @property
    def mib_per_s(self) -> float:
        """Transfer rate in MiB/s."""
        return self.nbytes / MIB / self.seconds if self.seconds > 0 else 0.0


def stream_download(port: int, mb: float, timeout: float = 60.0) -> TransferResult:
    """GET ``/stream?mb=...`` and read the whole body; measure first-byte time and rate.

    The first-byte time is from sending the request to the first body bytes.
    """
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    buf = bytearray(1024 * 1024)
    view = memoryview(buf)
    try:
        t0 = time.perf_counter()
        conn.request("GET", f"/stream?mb={mb:g}")
        resp = conn.getresponse()
        first = resp.read1(CHUNK_SIZE)
        ttfb = time.perf_counter() - t0
        total = len(first)
        while True:
            n = resp.readinto(view)
            if not n:
                break
            total += n
        elapsed = time.perf_counter() - t0
        return TransferResult(resp.status, total, elapsed, ttfb * 1000.0)
    finally:
        view.release()
        conn.close()


def upload(port: int, mb: float, timeout: float = 60.0) -> TransferResult:
    """POST ``mb`` MiB to ``/upload`` in 64 KiB pieces; ``nbytes`` is the server's count."""
    total = int(mb * MIB)
    piece = b"u" * CHUNK_SIZE
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        t0 = time.perf_counter()
        conn.putrequest("POST", "/upload")
        conn.putheader("Content-Type", "application/octet-stream")
        conn.putheader("Content-Length", str(total))
        conn.endheaders()
        sent = 0
        while sent < total:
            chunk = piece if total - sent >= CHUNK_SIZE else piece[: total - sent]
            conn.send(chunk)
            sent += len(chunk)
        resp = conn.getresponse()
        body = resp.read()
        elapsed = time.perf_counter() - t0
        counted = 0
        if resp.status == 200:
            counted = int(json.loads(body).get("bytes", 0))
        return TransferResult(resp.status, counted, elapsed)
    finally:
        conn.close()
