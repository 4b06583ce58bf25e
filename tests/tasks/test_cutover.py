"""The cut-over switch over real sockets, on the example's ported route ``task_detail``.

``/api/tasks/<id>`` has a Flask view and a native port (``manage.py routes`` says
``ported``), so ``FLASK_ROUTES``, ``CANARY_ROUTES`` and SIGHUP can be seen at work:

* a sticky 20 % canary, on a server in this process (real HTTP over a socket);
* ``manage.py serve`` as a real process reading a ``.env`` in its working directory:
  the route switched back to Flask and, after editing ``.env`` and SIGHUP, native
  again on a connection opened before the signal; a bad value stops start-up
  (one ``Error:`` line), and a bad value on SIGHUP keeps the old plan;
* ``--processes 2``: the supervisor forwards SIGHUP to each child, a SIGHUP sent
  while a child starts waits for it, and a child that replaces a crashed one
  follows the plan its siblings follow: the last one a reload (or the start)
  validated, not an edit of ``.env`` no reload took, nor the start's after a
  refused reload;
* a reload reads only the three cut-over variables (a bad ``THREADS`` does not stop
  it), and one set in the process environment is named in a warning.

Which side served a request is read from its access line: the ``X-Request-ID`` the
test sends comes back as ``request_id=`` next to ``side=native`` or ``side=flask``.
The plan's parsing, pure: ``tests/test_cutover.py``.
"""

from __future__ import annotations

import http.client
import json
import re
import signal
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from config import PROJECT_ROOT
from config.settings import SESSION_COOKIE_NAME
from server.cutover.routing import CANARY_COOKIE
from tests.support.cli import ServerProcess, environment, run, sitecustomize_dir
from tests.support.login import register_and_log_in
from tests.support.server import LiveServer, ServerFactory
from wsgi_bridge.testing import LogCapture, capture_logs, wait_for

TASK = "/api/tasks/1"
"""A path of the ``task_detail`` route (``/api/tasks/([^/]+)``) on both sides."""

RELOADED = re.compile(r"\[info\s*\] (SIGHUP: routes reloaded)")
NOT_RELOADED = re.compile(r"\[error\s*\] (SIGHUP: routes not reloaded.*)")
STARTED_CHILD = re.compile(r"started process \d+ \(pid (\d+)\)")


def get(
    connection: http.client.HTTPConnection, path: str, request_id: str, cookie: str = ""
) -> http.client.HTTPResponse:
    """``GET path`` on ``connection`` (kept alive) with ``X-Request-ID``; the body is read."""
    headers = {"X-Request-ID": request_id}
    if cookie:
        headers["Cookie"] = cookie
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    response.read()
    assert not response.will_close, "the server closed a kept-alive connection"
    return response


def sides(logs: LogCapture, request_ids: list[str]) -> dict[str, str]:
    """Request id -> the ``side`` of its access line, once every one was logged."""

    def found() -> dict[str, str]:
        return {
            r.request_id: r.side  # type: ignore[attr-defined]  # extra= fields
            for r in list(logs.records)
            if getattr(r, "request_id", None) in wanted
        }

    wanted = set(request_ids)
    assert wait_for(lambda: len(found()) == len(wanted), timeout=10), "access lines missing"
    return found()


def canary_cookie(response: http.client.HTTPResponse) -> str | None:
    """The canary cookie's value set by ``response``, if any."""
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.get_all("Set-Cookie") or []:
        jar.load(header)
    morsel = jar.get(CANARY_COOKIE)
    return morsel.value if morsel is not None else None


@pytest.fixture
def canary(live_server: ServerFactory) -> Iterator[tuple[LiveServer, LogCapture]]:
    """A server with ``CANARY_ROUTES=task_detail:20`` and task 1; its access lines captured."""
    with capture_logs("tornado.access") as logs:
        server = live_server(canary_routes="task_detail:20")
        yield server, logs


@pytest.fixture
def connection(canary: tuple[LiveServer, LogCapture]) -> Iterator[http.client.HTTPConnection]:
    """One kept-alive connection to the canary server."""
    connection = http.client.HTTPConnection("127.0.0.1", canary[0].port, timeout=10)
    yield connection
    connection.close()


def test_a_20_percent_canary_sends_a_fifth_of_the_clients_native_and_keeps_each_there(
    canary: tuple[LiveServer, LogCapture], connection: http.client.HTTPConnection
) -> None:
    _, logs = canary
    clients = [f"client-{i:04d}" for i in range(1000)]  # fixed: the split cannot flake
    first: list[str] = []
    for client in clients:
        response = get(connection, TASK, f"a-{client}", f"{CANARY_COOKIE}={client}")
        assert response.status == 404  # "no such task": the route's own answer
        assert canary_cookie(response) is None  # it had one
        first.append(f"a-{client}")
    side_of = sides(logs, first)
    native = sum(side_of[f"a-{client}"] == "native" for client in clients)
    assert 150 <= native <= 250, f"{native} of 1000 clients on the native side"
    again = []
    for client in clients:
        get(connection, TASK, f"b-{client}", f"{CANARY_COOKIE}={client}")
        again.append(f"b-{client}")
    side_again = sides(logs, again)
    moved = [c for c in clients if side_again[f"b-{c}"] != side_of[f"a-{c}"]]
    assert moved == []


def test_a_client_without_the_cookie_gets_one_and_stays_on_its_side(
    canary: tuple[LiveServer, LogCapture], connection: http.client.HTTPConnection
) -> None:
    _, logs = canary
    for client in range(20):
        response = get(connection, TASK, f"new-{client}")
        cookie = canary_cookie(response)
        assert cookie is not None, "no canary cookie set"
        set_cookie = response.headers.get_all("Set-Cookie") or []
        header = next(h for h in set_cookie if h.startswith(f"{CANARY_COOKIE}="))
        assert "Path=/" in header and "HttpOnly" in header and "Max-Age=" in header
        ids = [f"new-{client}"]
        for request in range(5):
            again = get(connection, TASK, f"new-{client}-{request}", f"{CANARY_COOKIE}={cookie}")
            assert canary_cookie(again) is None  # kept, not replaced
            ids.append(f"new-{client}-{request}")
        assert len(set(sides(logs, ids).values())) == 1, f"client {client} changed sides"


def test_a_logged_in_user_stays_on_one_side_whatever_canary_cookie_it_sends(
    canary: tuple[LiveServer, LogCapture], connection: http.client.HTTPConnection
) -> None:
    server, logs = canary
    browser = register_and_log_in(server)
    session = browser.cookies[SESSION_COOKIE_NAME]
    browser.close()
    ids = []
    for client in range(40):
        cookie = f"{SESSION_COOKIE_NAME}={session}; {CANARY_COOKIE}=client-{client:04d}"
        get(connection, TASK, f"user-{client}", cookie)
        ids.append(f"user-{client}")
    assert len(set(sides(logs, ids).values())) == 1
    # The same canary cookies without the session do split (the check above could fail).
    for client in range(40):
        get(connection, TASK, f"anon-{client}", f"{CANARY_COOKIE}=client-{client:04d}")
    assert len(set(sides(logs, [f"anon-{c}" for c in range(40)]).values())) == 2


# ------------------------------------------------- manage.py serve, real processes


def write_env(directory: Path, **settings: str) -> None:
    """Write ``directory/.env`` with ``settings`` (what an operator edits before SIGHUP)."""
    lines = [f"{name}={value}\n" for name, value in settings.items()]
    (directory / ".env").write_text("".join(lines))


def serve(
    migrated: str, cwd: Path, *args: str, site: Path | None = None, **env: str
) -> ServerProcess:
    """``manage.py serve --no-reload *args`` on a free port, reading ``cwd/.env``."""
    variables = {"PORT": "0", "THREADS": "4", "SHUTDOWN_TIMEOUT": "10", **env}
    return ServerProcess(
        "--no-reload", *args, env=environment(migrated, site, **variables), cwd=cwd
    )


def side(server: ServerProcess, request_id: str) -> str:
    """The ``side`` of the access line of the request ``request_id``."""
    return server.wait_for_line(re.compile(rf"request_id={re.escape(request_id)} side=(\w+)"))


def pid_of(connection: http.client.HTTPConnection) -> int:
    """The pid of the process serving ``connection`` (``/healthz``)."""
    connection.request("GET", "/healthz")
    response = connection.getresponse()
    assert response.status == 200
    pid: int = json.loads(response.read())["pid"]
    return pid


def connect_to_each(
    port: int, pids: set[int], attempts: int = 400
) -> dict[int, http.client.HTTPConnection]:
    """A kept-alive connection to each process of ``pids``, by pid (fresh ones until found)."""
    found: dict[int, http.client.HTTPConnection] = {}
    for _ in range(attempts):
        if set(found) == pids:
            break
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        pid = pid_of(connection)
        if pid in pids and pid not in found:
            found[pid] = connection
        else:
            connection.close()
    assert set(found) == pids, f"reached {set(found)} of {pids}"
    return dict(found)


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    """The server's working directory, where it reads ``.env``."""
    directory = tmp_path / "service"
    directory.mkdir()
    return directory


def counts(port: int) -> dict[str, float]:
    """``cutover_requests_total`` of ``task_detail`` by side, from ``/metrics``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    return {
        sample.labels["side"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "cutover_requests_total" and sample.labels["route"] == "task_detail"
    }


def test_flask_routes_switches_a_route_back_and_sighup_makes_it_native_again(
    migrated: str, cwd: Path, servers: list[ServerProcess]
) -> None:
    write_env(cwd, FLASK_ROUTES="task_detail")
    server = serve(migrated, cwd)
    servers.append(server)
    port = server.port()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        assert get(connection, TASK, "before").status == 404
        assert side(server, "before") == "flask"
        local = connection.sock.getsockname()
        write_env(cwd, FLASK_ROUTES="")
        server.process.send_signal(signal.SIGHUP)
        server.wait_for_line(RELOADED)
        # The connection opened before the signal is still the same one, and now native.
        assert get(connection, TASK, "after").status == 404
        assert connection.sock.getsockname() == local
        assert side(server, "after") == "native"
    finally:
        connection.close()
    assert counts(port) == {"flask": 1.0, "native": 1.0}
    status, _ = server.stop(20)
    assert status == 0, server.log


def test_sighup_with_a_bad_value_logs_one_error_and_keeps_the_old_plan(
    migrated: str, cwd: Path, servers: list[ServerProcess]
) -> None:
    write_env(cwd, FLASK_ROUTES="task_detail")
    server = serve(migrated, cwd)
    servers.append(server)
    connection = http.client.HTTPConnection("127.0.0.1", server.port(), timeout=10)
    try:
        write_env(cwd, FLASK_ROUTES="task_detial")  # a typo
        server.process.send_signal(signal.SIGHUP)
        error = server.wait_for_line(NOT_RELOADED)
        assert "FLASK_ROUTES" in error and "'task_detial'" in error
        get(connection, TASK, "kept")
        assert side(server, "kept") == "flask"
        assert len([line for line in server.lines if "SIGHUP" in line]) == 1
        assert server.process.poll() is None
    finally:
        connection.close()
    status, _ = server.stop(20)
    assert status == 0, server.log


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"FLASK_ROUTES": "task_detial"}, ("FLASK_ROUTES", "'task_detial'")),
        ({"CANARY_ROUTES": "task_detail:120"}, ("CANARY_ROUTES", "'task_detail:120'")),
        ({"SHADOW_ROUTES": "task_stats"}, ("SHADOW_ROUTES", "'task_stats'")),
        (
            {"FLASK_ROUTES": "task_detail", "CANARY_ROUTES": "task_detail:20"},
            ("CANARY_ROUTES", "'task_detail'", "FLASK_ROUTES"),
        ),
    ],
    ids=["unknown route", "percentage out of range", "shadow without flask", "both"],
)
def test_a_bad_value_stops_start_up_with_one_error_line(
    migrated: str, cwd: Path, settings: dict[str, str], named: tuple[str, ...]
) -> None:
    write_env(cwd, **settings)
    # A server that starts instead would run until the timeout fails the test.
    result = run("serve", "--no-reload", env=environment(migrated, PORT="0"), cwd=cwd, timeout=30)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "Error:" in line]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("Error: ")
    for word in named:
        assert word in errors[0]
    assert "serving on" not in result.stderr


# ------------------------------------------------------------ several processes

FORWARDED = re.compile(r"\[info\s*\] (SIGHUP: forwarded to \d+ process)")
STARTING = re.compile(r"child (\d+) starting")

SLOW_CHILDREN = """
import logging
import os
import sys
import time

sys.path.insert(0, {root!r})  # as running manage.py does, a moment later

import app

SUPERVISOR = os.getpid()  # the children are forked from this process
_create_app = app.create_app


def create_app(*args, **kwargs):
    if os.getpid() != SUPERVISOR:  # a server process starting, not the supervisor's check
        logging.getLogger("test.start").warning("child %d starting", os.getpid())
        deadline = time.monotonic() + 30
        while not os.path.exists({release!r}) and time.monotonic() < deadline:
            time.sleep(0.02)
    return _create_app(*args, **kwargs)


app.create_app = create_app  # before server.build imports it (its default argument)
"""
"""A ``sitecustomize`` holding each child at the start of its build until ``release`` exists."""


def children(server: ServerProcess) -> set[int]:
    """The pids of the supervisor's child processes now."""
    return {child.pid for child in psutil.Process(server.process.pid).children()}


def test_sighup_to_the_supervisor_switches_the_route_in_every_process(
    migrated: str, cwd: Path, servers: list[ServerProcess]
) -> None:
    write_env(cwd, FLASK_ROUTES="task_detail")
    server = serve(migrated, cwd, "--processes", "2")
    servers.append(server)
    port = server.port()
    server.port(2)
    pids = children(server)
    connections = connect_to_each(port, pids)
    try:
        for pid, connection in connections.items():
            get(connection, TASK, f"before-{pid}")
            assert side(server, f"before-{pid}") == "flask"
        write_env(cwd, FLASK_ROUTES="")
        server.process.send_signal(signal.SIGHUP)
        server.wait_for_line(RELOADED, count=2)  # one per process
        for pid, connection in connections.items():
            get(connection, TASK, f"after-{pid}")  # each connection is served by its pid
            assert side(server, f"after-{pid}") == "native"
        assert server.process.poll() is None  # SIGHUP did not kill the supervisor
        assert children(server) == pids  # nor any process
    finally:
        for connection in connections.values():
            connection.close()
    status, _ = server.stop(20)
    assert status == 0, server.log


def test_a_sighup_sent_while_the_processes_start_waits_for_them(
    migrated: str, cwd: Path, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    release = tmp_path / "release"
    code = SLOW_CHILDREN.format(root=str(PROJECT_ROOT), release=str(release))
    write_env(cwd, FLASK_ROUTES="task_detail")
    server = serve(migrated, cwd, "--processes", "2", site=sitecustomize_dir(tmp_path, code))
    servers.append(server)
    server.wait_for_line(STARTING, count=2)  # both are building, no handler yet
    pids = children(server)
    write_env(cwd, FLASK_ROUTES="")
    server.process.send_signal(signal.SIGHUP)
    server.wait_for_line(FORWARDED)  # both children have it pending now
    release.touch()
    port = server.port(2)
    server.wait_for_line(RELOADED, count=2)  # the pending SIGHUP, handled once serving
    assert children(server) == pids and "exited" not in server.log
    connections = connect_to_each(port, pids)
    try:
        for pid, connection in connections.items():
            get(connection, TASK, f"after-{pid}")
            assert side(server, f"after-{pid}") == "native"
    finally:
        for connection in connections.values():
            connection.close()
    status, _ = server.stop(20)
    assert status == 0, server.log


def serve_each(
    server: ServerProcess, port: int, pids: set[int], name: str, clients: int = 1
) -> dict[int, set[str]]:
    """Send ``clients`` requests (each its own canary cookie) to each process of ``pids``;
    return the sides that served each process's requests."""
    connections = connect_to_each(port, pids)
    served: dict[int, set[str]] = {}
    try:
        for pid, connection in connections.items():
            ids = [f"{name}-{pid}-{client}" for client in range(clients)]
            for request_id, client in zip(ids, range(clients), strict=True):
                get(connection, TASK, request_id, f"{CANARY_COOKIE}=client-{client:04d}")
            served[pid] = {side(server, request_id) for request_id in ids}
    finally:
        for connection in connections.values():
            connection.close()
    return served


def replace_one(server: ServerProcess, victim: int, started: int) -> int:
    """SIGKILL ``victim``; return the pid of its replacement (the ``started``-th child)."""
    psutil.Process(victim).kill()
    replacement = int(server.wait_for_line(STARTED_CHILD, count=started))
    server.port(started)
    return replacement


def test_a_process_replacing_a_crashed_one_follows_the_plan_in_force_not_an_unreloaded_edit(
    migrated: str, cwd: Path, servers: list[ServerProcess]
) -> None:
    write_env(cwd, FLASK_ROUTES="task_detail")
    server = serve(migrated, cwd, "--processes", "2")
    servers.append(server)
    port = server.port()
    server.port(2)
    victim, survivor = sorted(children(server))
    write_env(cwd, FLASK_ROUTES="")  # no SIGHUP: no process follows it, new ones neither
    replacement = replace_one(server, victim, 3)
    served = serve_each(server, port, {survivor, replacement}, "edited")
    assert served == {survivor: {"flask"}, replacement: {"flask"}}
    # The reload the edit was waiting for: every process follows it, later ones too.
    server.process.send_signal(signal.SIGHUP)
    server.wait_for_line(RELOADED, count=2)
    third = replace_one(server, replacement, 4)
    served = serve_each(server, port, {survivor, third}, "reloaded")
    assert served == {survivor: {"native"}, third: {"native"}}
    status, _ = server.stop(20)
    assert status == 0, server.log


SUPERVISOR_KEPT = re.compile(r"\[error\s*\] (SIGHUP: cut-over settings not reloaded.*)")


def test_after_a_refused_reload_a_replacement_follows_the_last_valid_one_not_the_start(
    migrated: str, cwd: Path, servers: list[ServerProcess]
) -> None:
    write_env(cwd, CANARY_ROUTES="task_detail:50")  # the plan at start: a canary
    server = serve(migrated, cwd, "--processes", "2")
    servers.append(server)
    port = server.port()
    server.port(2)
    write_env(cwd, FLASK_ROUTES="task_detail")  # roll back: valid, reloaded
    server.process.send_signal(signal.SIGHUP)
    server.wait_for_line(RELOADED, count=2)
    write_env(cwd, FLASK_ROUTES="task_detial")  # a typo: refused by every process
    server.process.send_signal(signal.SIGHUP)
    server.wait_for_line(NOT_RELOADED, count=2)
    error = server.wait_for_line(SUPERVISOR_KEPT)
    assert "FLASK_ROUTES" in error and "'task_detial'" in error
    victim, sibling = sorted(children(server))
    replacement = replace_one(server, victim, 3)
    # 40 clients: under the 50 % canary about half of them would be served natively.
    served = serve_each(server, port, {sibling, replacement}, "after", clients=40)
    assert served == {sibling: {"flask"}, replacement: {"flask"}}
    status, _ = server.stop(20)
    assert status == 0, server.log


def test_a_bad_other_setting_does_not_stop_a_reload(
    migrated: str, cwd: Path, servers: list[ServerProcess]
) -> None:
    write_env(cwd)
    env = environment(migrated, PORT="0", SHUTDOWN_TIMEOUT="10")  # THREADS from .env
    server = ServerProcess("--no-reload", "--processes", "2", env=env, cwd=cwd)
    servers.append(server)
    port = server.port()
    server.port(2)
    write_env(cwd, THREADS="abc", FLASK_ROUTES="task_detail")  # an emergency roll-back
    server.process.send_signal(signal.SIGHUP)
    server.wait_for_line(RELOADED, count=2)
    victim, sibling = sorted(children(server))
    replacement = replace_one(server, victim, 3)  # the supervisor took it too
    served = serve_each(server, port, {sibling, replacement}, "after")
    assert served == {sibling: {"flask"}, replacement: {"flask"}}
    assert "not reloaded" not in server.log
    status, _ = server.stop(20)
    assert status == 0, server.log


FROZEN = re.compile(
    r"\[warning\s*\] (\w+: FLASK_ROUTES is set in the process environment.*? in \.env)"
)


@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_cutover_variable_in_the_process_environment_is_named_at_start_and_on_reload(
    migrated: str, cwd: Path, servers: list[ServerProcess], processes: str
) -> None:
    write_env(cwd, FLASK_ROUTES="")
    # Lower case: pydantic-settings reads it all the same, and it wins over .env.
    server = serve(migrated, cwd, "--processes", processes, flask_routes="task_detail")
    servers.append(server)
    port = server.port()
    started = server.wait_for_line(FROZEN)
    assert started == (
        "start: FLASK_ROUTES is set in the process environment, so SIGHUP cannot change it: "
        "keep it in .env"
    )
    server.port(int(processes))
    server.process.send_signal(signal.SIGHUP)
    server.wait_for_line(RELOADED, count=int(processes))
    assert server.wait_for_line(FROZEN, count=2).startswith("SIGHUP: FLASK_ROUTES is set")
    served = serve_each(server, port, children(server) or {server.process.pid}, "pinned")
    assert all(sides == {"flask"} for sides in served.values())
    status, _ = server.stop(20)
    assert status == 0, server.log
    assert len(FROZEN.findall(server.log)) == 2  # one per start or reload, not per process
