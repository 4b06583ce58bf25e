"""``manage.py serve --processes N`` and ``--loop uvloop`` as real processes, and the drain.

Several processes serve one port, a killed one is replaced, SIGTERM drains every
process (``/readyz`` 503 for ``DRAIN_GRACE`` seconds, in-flight requests on both
sides complete, every response then says ``Connection: close``) and the exit
status is 0. Slow test-only routes on both sides (``/_test/slow``, Flask, and
``/_test/native-slow``, native) come from a ``sitecustomize`` module on
``PYTHONPATH``; each logs ``slow request started`` when it begins, so a test
knows they are in flight without guessing at timing.
"""

from __future__ import annotations

import re
import signal
import threading
from pathlib import Path

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from config import PROJECT_ROOT
from tests.support.cli import ServerProcess, environment, sitecustomize_dir
from wsgi_bridge.testing import wait_for

SITECUSTOMIZE = f"""
import asyncio
import logging
import sys
import time

sys.path.insert(0, {str(PROJECT_ROOT)!r})  # as running manage.py does, a moment later

from flask import request

import app

log = logging.getLogger("test.slow")
_create_app = app.create_app


def create_app(*args, **kwargs):
    flask_app = _create_app(*args, **kwargs)

    def slow():
        log.warning("slow request started (flask)")
        time.sleep(float(request.args.get("seconds", "0")))
        return "flask done"

    flask_app.add_url_rule("/_test/slow", "test_slow", slow)
    return flask_app


app.create_app = create_app  # before server.build imports it (its default argument)

import server.build
from tornado.web import url
from tornado_handlers.base import BaseHandler

_make_routes = server.build.make_routes


class NativeSlow(BaseHandler):
    async def get(self):
        log.warning("slow request started (native)")
        await asyncio.sleep(float(self.get_argument("seconds", "0")))
        self.write("native done")


def make_routes(shared, *args, **kwargs):
    rules = _make_routes(shared, *args, **kwargs)
    rules.insert(0, url(r"/_test/native-slow", NativeSlow, shared.kwargs()))
    return rules


server.build.make_routes = make_routes
"""

STARTED = re.compile(r"slow request started \((\w+)\)")
DRAINING = re.compile(r"(draining): /readyz answers 503")
LISTENER_CLOSED = re.compile(r"(shutting down): waiting up to")
STARTED_CHILD = re.compile(r"started process \d+ \(pid (\d+)\)")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A directory holding the test-only ``sitecustomize``."""
    return sitecustomize_dir(tmp_path, SITECUSTOMIZE)


def pids_seen(base: str, wanted: int, attempts: int = 400) -> set[int]:
    """Ask ``/healthz`` on fresh connections until ``wanted`` different pids answered."""
    pids: set[int] = set()
    for _ in range(attempts):
        answer = httpx.get(f"{base}/healthz", timeout=5)
        assert answer.status_code == 200
        pids.add(answer.json()["pid"])
        if len(pids) >= wanted:
            break
    return pids


def start(site: Path, migrated: str, *args: str, **env: str) -> ServerProcess:
    """``manage.py serve --no-reload *args`` on a free port, with the slow routes."""
    variables = {"PORT": "0", "THREADS": "4", "SHUTDOWN_TIMEOUT": "10", **env}
    return ServerProcess("--no-reload", *args, env=environment(migrated, site, **variables))


def children(server: ServerProcess) -> set[int]:
    """The pids of the supervisor's child processes now."""
    return {child.pid for child in psutil.Process(server.process.pid).children()}


def test_two_processes_serve_one_port_and_both_take_requests(
    migrated: str, site: Path, servers: list[ServerProcess]
) -> None:
    server = start(site, migrated, "--processes", "2")
    servers.append(server)
    base = f"http://127.0.0.1:{server.port()}"
    server.port(2)  # both children listen
    pids = pids_seen(base, 2)
    assert len(pids) == 2, f"only {pids} answered"
    assert pids == children(server)
    assert server.process.pid not in pids  # the supervisor itself serves nothing
    assert httpx.get(f"{base}/readyz", timeout=5).status_code == 200
    status, _ = server.stop(20)
    assert status == 0, server.log


def test_a_killed_process_is_replaced_while_the_port_keeps_serving(
    migrated: str, site: Path, servers: list[ServerProcess]
) -> None:
    server = start(site, migrated, "--processes", "2")
    servers.append(server)
    base = f"http://127.0.0.1:{server.port()}"
    server.port(2)
    before = children(server)
    victim = min(before)
    psutil.Process(victim).kill()  # SIGKILL: no chance to drain
    server.wait_for_line(re.compile(rf"pid ({victim})\) exited unexpectedly \(signal 9"))
    new_pid = int(server.wait_for_line(STARTED_CHILD, count=3))
    assert new_pid not in before
    server.port(3)  # the replacement listens
    # Requests succeed all along: the survivor serves while the replacement starts.
    pids = pids_seen(base, 2)
    assert pids == (before - {victim}) | {new_pid}
    status, _ = server.stop(20)
    assert status == 0, server.log


@pytest.mark.parametrize("processes", ["1", "2"])
def test_sigterm_turns_not_ready_then_lets_requests_in_flight_finish(
    migrated: str, site: Path, servers: list[ServerProcess], processes: str
) -> None:
    server = start(site, migrated, "--processes", processes, DRAIN_GRACE="1")
    servers.append(server)
    base = f"http://127.0.0.1:{server.port()}"
    server.port(int(processes))
    answers: dict[str, httpx.Response] = {}

    def fetch(side: str, path: str) -> None:
        answers[side] = httpx.get(f"{base}{path}?seconds=2", timeout=15)

    threads = [
        threading.Thread(target=fetch, args=("flask", "/_test/slow")),
        threading.Thread(target=fetch, args=("native", "/_test/native-slow")),
    ]
    for thread in threads:
        thread.start()
    server.wait_for_line(STARTED, count=2)
    server.process.send_signal(signal.SIGTERM)
    server.wait_for_line(DRAINING, count=int(processes))
    ready = httpx.get(f"{base}/readyz", timeout=5)
    assert ready.status_code == 503
    assert ready.json()["checks"]["draining"] != "ok"
    assert ready.headers["Connection"] == "close"
    server.wait_for_line(LISTENER_CLOSED, count=int(processes))
    with pytest.raises(httpx.ConnectError):  # refused, not queued for no one
        httpx.get(f"{base}/healthz", timeout=5)
    for thread in threads:
        thread.join(15)
    assert answers["flask"].status_code == 200 and answers["flask"].text == "flask done"
    assert answers["native"].status_code == 200 and answers["native"].text == "native done"
    assert server.process.wait(20) == 0, server.log


@pytest.mark.parametrize("path", ["/healthz", "/_test/slow"], ids=["native", "flask"])
def test_responses_during_the_drain_close_keep_alive_connections(
    migrated: str, site: Path, servers: list[ServerProcess], path: str
) -> None:
    server = start(site, migrated, DRAIN_GRACE="2")
    servers.append(server)
    base = f"http://127.0.0.1:{server.port()}"
    with httpx.Client(base_url=base, timeout=5) as client:
        before = client.get(path)
        assert before.status_code == 200
        assert before.headers.get("Connection") != "close"  # kept alive
        server.process.send_signal(signal.SIGTERM)
        server.wait_for_line(DRAINING)
        during = client.get(path)  # the same keep-alive connection
        assert during.status_code == 200
        assert during.headers["Connection"] == "close"
        again = client.get(path)  # a new connection: the listener still accepts
        assert again.status_code == 200
    assert server.process.wait(20) == 0, server.log


def test_uvloop_serves_and_says_so(migrated: str, site: Path, servers: list[ServerProcess]) -> None:
    server = start(site, migrated, "--loop", "uvloop")
    servers.append(server)
    base = f"http://127.0.0.1:{server.port()}"
    assert "event loop: uvloop" in server.log
    assert httpx.get(f"{base}/_test/slow", timeout=5).text == "flask done"
    assert httpx.get(f"{base}/_test/native-slow", timeout=5).text == "native done"
    status, _ = server.stop(20)
    assert status == 0, server.log


def test_a_supervisor_killed_outright_takes_its_processes_with_it(
    migrated: str, site: Path, servers: list[ServerProcess]
) -> None:
    server = start(site, migrated, "--processes", "2")
    servers.append(server)
    server.port(2)
    orphans = [psutil.Process(pid) for pid in children(server)]
    server.process.kill()
    server.process.wait(5)
    assert wait_for(lambda: not any(p.is_running() and p.status() != "zombie" for p in orphans), 15)


# Every child fails as it starts: the supervisor must back off, then give up.
CRASHING = f"""
import sys

sys.path.insert(0, {str(PROJECT_ROOT)!r})

import server.processes


def _serve_child(*args, **kwargs):
    raise RuntimeError("this child cannot start")


server.processes._serve_child = _serve_child
"""


def test_processes_that_keep_crashing_at_start_make_the_supervisor_give_up(
    migrated: str, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    site = tmp_path / "crashing"
    site.mkdir()
    (site / "sitecustomize.py").write_text(CRASHING)
    server = start(site, migrated, "--processes", "2")
    servers.append(server)
    assert server.process.wait(30) == 1, server.log
    server.close()
    assert "this child cannot start" in server.log
    assert "replacing it in 0.25 s" in server.log  # backed off, not spinning
    assert re.search(r"5 crashes within 30 s, giving up", server.log), server.log
    assert "serving on" not in server.log


def test_metrics_add_up_across_the_processes_and_forget_a_dead_one(
    migrated: str, site: Path, servers: list[ServerProcess], tmp_path: Path
) -> None:
    directory = tmp_path / "prometheus"  # an earlier run's value files are removed, nothing else
    directory.mkdir()
    (directory / "counter_999999.db").write_bytes(b"an earlier run's counts")
    (directory / "README").write_text("the operator's")
    server = start(site, migrated, "--processes", "2", PROMETHEUS_MULTIPROC_DIR=str(directory))
    servers.append(server)
    base = f"http://127.0.0.1:{server.port()}"
    server.port(2)
    answered: dict[int, int] = {}  # pid -> /healthz requests it answered
    while len(answered) < 2 or sum(answered.values()) < 10:
        pid = httpx.get(f"{base}/healthz", timeout=5).json()["pid"]
        answered[pid] = answered.get(pid, 0) + 1
        assert sum(answered.values()) < 400, answered
    for _ in range(6):
        assert httpx.get(f"{base}/_test/slow", timeout=5).status_code == 200

    def total(name: str, **wanted: str) -> float:
        text = httpx.get(f"{base}/metrics", timeout=5).text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name and wanted.items() <= sample.labels.items()
        )

    healthz = {"side": "native", "route": "/healthz", "status": "200"}
    slow = {"side": "flask", "route": "/_test/slow", "status": "200"}
    assert not (directory / "counter_999999.db").exists()
    assert (directory / "README").read_text() == "the operator's"
    assert total("http_requests_total", **healthz) == sum(answered.values())
    assert total("http_requests_total", **slow) == 6
    # A killed process's live gauges are forgotten (on_child_exit), its counts stay.
    victim = min(answered)
    assert list(directory.glob(f"gauge_livesum_{victim}.db"))
    psutil.Process(victim).kill()
    server.wait_for_line(re.compile(rf"pid ({victim})\) exited unexpectedly"))
    assert wait_for(lambda: not list(directory.glob(f"gauge_livesum_{victim}.db")), 5)
    assert total("http_requests_total", **healthz) >= sum(answered.values())
    status, _ = server.stop(20)
    assert status == 0, server.log


def test_a_metrics_directory_made_for_the_run_is_removed_at_exit(
    migrated: str, site: Path, servers: list[ServerProcess]
) -> None:
    server = start(site, migrated, "--processes", "2")
    servers.append(server)
    server.port(2)
    made = re.compile(r"metrics of every process in (\S+) \(removed at exit\)")
    directory = Path(server.wait_for_line(made))
    assert directory.is_dir()
    status, _ = server.stop(20)
    assert status == 0, server.log
    assert not directory.exists()
