"""Measure the WSGI bridge against Tornado 6.6.1's WSGIContainer.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bridge_measure.py            # everything, both containers
    .venv/bin/python benchmarks/bridge_measure.py --download-mib 256 --skip-tornado-big

Prints a Markdown table:

* peak RSS growth of the *server process* (a child process, sampled every 10 ms
  with psutil; baseline = the idle server before its first request) during a
  streamed download (default 1 GiB, 64 KiB generated blocks) and during an upload
  (default 256 MiB, sent and read in 64 KiB pieces);
* time to first byte of a generator that yields one chunk then sleeps 0.5 s
  five times;
* completion times of 24 concurrent requests to a view that sleeps 250 ms, with a
  4-thread pool (the "waves").

The servers and workloads are the test harness's (:mod:`wsgi_bridge.testing`), so
what is measured is exactly what the tests run.
"""

from __future__ import annotations

import argparse
import http.client
import sys
import threading
import time

from wsgi_bridge.testing import (
    BridgeServer,
    PeakSampler,
    SubprocessServer,
    sleepy,
    stream_download,
    stream_upload,
)

MIB = 1024 * 1024


def download_growth(kind: str, size: int) -> tuple[float, float]:
    """Return ``(peak RSS growth MiB, seconds)`` for a ``size``-byte streamed download."""
    with SubprocessServer(kind, f"download:{size}") as server:
        baseline = server.rss()  # idle server, before any request: conservative
        start = time.monotonic()
        with PeakSampler(server.rss) as peak:
            received, _ = stream_download(server.port)
        assert received == size, received
        return (peak.peak - baseline) / MIB, time.monotonic() - start


def upload_growth(kind: str, size: int) -> tuple[float, float]:
    """Return ``(peak RSS growth MiB, seconds)`` for a ``size``-byte upload."""
    with SubprocessServer(kind, "upload") as server:
        baseline = server.rss()  # idle server, before any request: conservative
        start = time.monotonic()
        with PeakSampler(server.rss) as peak:
            body = stream_upload(server.port, size)
        assert body == str(size).encode(), body
        return (peak.peak - baseline) / MIB, time.monotonic() - start


def first_byte(kind: str) -> float:
    """Seconds to the first body byte of a generator that then sleeps 5 x 0.5 s."""
    with SubprocessServer(kind, "slow:0.5") as server:
        _, ttfb = stream_download(server.port, block=5)
        return ttfb


def waves(kind: str) -> list[float]:
    """Completion times (s) of 24 concurrent requests, 250 ms view, 4 threads."""
    done: list[float] = []
    lock = threading.Lock()
    with BridgeServer(sleepy(0.25), kind=kind, workers=4, max_queue=24) as server:
        start = time.monotonic()

        def client() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            try:
                conn.request("GET", "/")
                conn.getresponse().read()
            finally:
                conn.close()
            with lock:
                done.append(time.monotonic() - start)

        threads = [threading.Thread(target=client) for _ in range(24)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    return sorted(done)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--download-mib", type=int, default=1024)
    parser.add_argument("--upload-mib", type=int, default=256)
    parser.add_argument(
        "--skip-tornado-big",
        action="store_true",
        help="do not run the big download/upload through Tornado's container (needs ~3x RAM)",
    )
    args = parser.parse_args(argv)
    kinds = ["bridge", "tornado"]
    results: dict[str, dict[str, str]] = {k: {} for k in kinds}
    for kind in kinds:
        big = kind == "bridge" or not args.skip_tornado_big
        if big:
            growth, secs = download_growth(kind, args.download_mib * MIB)
            results[kind]["download"] = f"{growth:+.1f} MiB ({secs:.1f} s)"
            growth, secs = upload_growth(kind, args.upload_mib * MIB)
            results[kind]["upload"] = f"{growth:+.1f} MiB ({secs:.1f} s)"
        else:
            results[kind]["download"] = results[kind]["upload"] = "skipped"
        results[kind]["ttfb"] = f"{first_byte(kind) * 1000:.1f} ms"
        times = waves(kind)
        groups = [times[i : i + 4] for i in range(0, 24, 4)]
        results[kind]["waves"] = ", ".join(f"{g[-1]:.2f}" for g in groups)
        print(f"{kind}: completions (s) {[round(t, 3) for t in times]}", file=sys.stderr)

    rows = [
        (f"peak RSS growth, {args.download_mib} MiB download", "download"),
        (f"peak RSS growth, {args.upload_mib} MiB upload (64 KiB reads)", "upload"),
        ("time to first byte, slow generator", "ttfb"),
        ("24 x 250 ms on 4 threads: last completion of each group of 4 (s)", "waves"),
    ]
    print("| measure | wsgi_bridge | tornado.wsgi.WSGIContainer |")
    print("| --- | --- | --- |")
    for label, key in rows:
        print(f"| {label} | {results['bridge'][key]} | {results['tornado'][key]} |")


if __name__ == "__main__":
    main()
