"""The cut-over plan (``FLASK_ROUTES``, ``CANARY_ROUTES``, ``SHADOW_ROUTES``), pure and fast.

Parsing against a route table, the canary's client buckets, ``systemctl reload``
sending SIGHUP, a SIGHUP while ``manage.py serve`` starts (and other commands keeping
SIGHUP's default), and which variables a reload reads. The switch, the canary and
SIGHUP over real sockets and processes are tested on the example feature's ported
route, with the example's own tests (they go when it is removed; a service's own
ported routes deserve the same tests).
"""

from __future__ import annotations

import http.client
import re
import signal
import time
from pathlib import Path

import pytest

from config import PROJECT_ROOT, ConfigError, load_settings
from server.cutover import CutoverPlan, RoutePlan, frozen_variables, read_cutover_settings
from server.cutover.routing import bucket
from tests.support.cli import ServerProcess, environment, run, sitecustomize_dir

PORTED = ("order_detail",)
"""The ported routes of these tests: a native rule's name whose path Flask also has."""

NATIVE_ONLY = ("order_stats", "healthz")
"""Native routes with no Flask counterpart."""


def parse(flask: str = "", canary: str = "", shadow: str = "") -> CutoverPlan:
    """:meth:`CutoverPlan.parse` against :data:`PORTED` and :data:`NATIVE_ONLY`."""
    return CutoverPlan.parse(flask, canary, shadow, PORTED, NATIVE_ONLY)


# ---------------------------------------------------------------- the plan, pure


def test_no_setting_leaves_every_ported_route_native() -> None:
    plan = parse()
    assert plan.routes == {}
    assert plan.route("order_detail") == RoutePlan("")
    assert plan.route("order_detail").state == "native"
    assert plan.describe() == "every ported route native"


def test_each_setting_gives_its_state() -> None:
    assert parse(flask=" order_detail ").route("order_detail") == RoutePlan("order_detail", 0.0)
    assert parse(canary="order_detail:20").route("order_detail").state == "canary 20%"
    assert parse(canary="order_detail:0").route("order_detail").state == "flask"
    assert parse(shadow="order_detail").route("order_detail").state == "native + shadow"
    both = parse(canary="order_detail:12.5", shadow="order_detail:10")
    assert both.route("order_detail").state == "canary 12.5% + shadow 10%"
    assert both.describe() == "order_detail: canary 12.5% + shadow 10%"
    switched = parse(flask="order_detail", shadow="order_detail")
    assert switched.route("order_detail") == RoutePlan("order_detail", 0.0, 100.0)


@pytest.mark.parametrize(
    ("flask", "canary", "shadow", "setting", "value"),
    [
        ("nope", "", "", "FLASK_ROUTES", "'nope'"),
        ("", "nope:5", "", "CANARY_ROUTES", "'nope'"),
        ("order_stats", "", "", "FLASK_ROUTES", "'order_stats' has no Flask counterpart"),
        ("", "", "order_stats", "SHADOW_ROUTES", "'order_stats' has no Flask counterpart"),
        ("", "order_detail:101", "", "CANARY_ROUTES", "'order_detail:101'"),
        ("", "order_detail:-1", "", "CANARY_ROUTES", "'order_detail:-1'"),
        ("", "order_detail:nan", "", "CANARY_ROUTES", "'order_detail:nan'"),
        ("", "order_detail:abc", "", "CANARY_ROUTES", "'order_detail:abc'"),
        ("", "order_detail:1e1", "", "CANARY_ROUTES", "'order_detail:1e1'"),
        ("", "order_detail:-0", "", "CANARY_ROUTES", "'order_detail:-0'"),
        ("", "order_detail:\uff15\uff10", "", "CANARY_ROUTES", "'order_detail:\uff15\uff10'"),
        ("", "", "order_detail:5%", "SHADOW_ROUTES", "'order_detail:5%'"),
        ("", "order_detail", "", "CANARY_ROUTES", "'order_detail' needs a percentage"),
        ("", "", "order_detail:0", "SHADOW_ROUTES", "'order_detail:0'"),
        ("order_detail:5", "", "", "FLASK_ROUTES", "'order_detail:5' takes no percentage"),
        ("order_detail,order_detail", "", "", "FLASK_ROUTES", "'order_detail' is named twice"),
        ("order_detail", "order_detail:20", "", "CANARY_ROUTES", "also in FLASK_ROUTES"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_setting_and_the_value(
    flask: str, canary: str, shadow: str, setting: str, value: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        parse(flask, canary, shadow)
    message = str(raised.value)
    assert message.startswith(f"{setting}: ") and value in message
    assert "\n" not in message


def test_a_clients_bucket_is_stable_and_spread_evenly() -> None:
    values = [bucket("order_detail", f"cookie:client-{i:04d}") for i in range(2000)]
    assert values == [bucket("order_detail", f"cookie:client-{i:04d}") for i in range(2000)]
    assert all(0 <= value < 100 for value in values)
    for low in range(0, 100, 25):  # each quarter holds a quarter, +- 5 points
        share = sum(low <= value < low + 25 for value in values) / len(values)
        assert 0.20 <= share <= 0.30, (low, share)
    # Another route puts the same clients elsewhere: canaries of two routes are independent.
    assert values != [bucket("order_stats", f"cookie:client-{i:04d}") for i in range(2000)]


def test_systemctl_reload_sends_sighup_to_the_supervisor() -> None:
    unit = (PROJECT_ROOT / "deploy" / "hybrid.service").read_text()
    assert re.search(r"^ExecReload=/bin/kill -HUP \$MAINPID$", unit, re.MULTILINE)


# ------------------------------------------------------- SIGHUP while manage.py starts

SIGHUP_ON_IMPORT = """
import os
import signal
import sys

_sent = []


def _sighup_at_first_import(event, args):
    # manage.py's first import of {module} (after its own first lines): SIGHUP now.
    if event == "import" and args[0] == {module!r} and not _sent:
        _sent.append(os.getpid())
        os.kill(os.getpid(), signal.SIGHUP)


sys.addaudithook(_sighup_at_first_import)
"""
"""A ``sitecustomize`` that sends its own process SIGHUP as ``module`` is first imported."""

RELOADED = re.compile(r"\[info\s*\] (SIGHUP: routes reloaded)")


def sighup_blocked(pid: int) -> bool:
    """Whether process ``pid`` blocks SIGHUP now (``SigBlk`` of ``/proc/<pid>/status``)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    blocked = re.search(r"^SigBlk:\s*([0-9a-f]+)$", status, re.MULTILINE)
    return blocked is not None and bool(int(blocked.group(1), 16) & 1 << (signal.SIGHUP - 1))


def test_a_sighup_while_serve_imports_waits_for_the_server(
    migrated: str, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    # The earliest points a test reaches deterministically: manage.py's import of
    # click (its own process signals itself there), then as soon as /proc shows SIGHUP
    # blocked, then 0.2 s later. Right after Popen the interpreter itself is still
    # starting, before any line of manage.py: SIGHUP's default action ends it there,
    # and no code of the project can run earlier.
    code = SIGHUP_ON_IMPORT.format(module="click")
    env = environment(migrated, sitecustomize_dir(tmp_path, code), PORT="0")
    server = ServerProcess("--no-reload", env=env, cwd=tmp_path)
    servers.append(server)
    deadline = time.monotonic() + 30
    while not sighup_blocked(server.process.pid):
        assert server.process.poll() is None, server.log  # killed by the first SIGHUP
        assert time.monotonic() < deadline, "SIGHUP never blocked"
        time.sleep(0.001)
    server.process.send_signal(signal.SIGHUP)
    time.sleep(0.2)
    server.process.send_signal(signal.SIGHUP)
    port = server.port()
    server.wait_for_line(RELOADED)  # the pending SIGHUP(s), handled once serving
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/healthz")
        assert connection.getresponse().status == 200
    finally:
        connection.close()
    assert server.process.poll() is None
    status, _ = server.stop(20)
    assert status == 0, server.log


@pytest.mark.parametrize("command", [["routes"], ["db", "current"]])
def test_other_commands_keep_sighups_default_action(
    migrated: str, tmp_path: Path, command: list[str]
) -> None:
    # The same SIGHUP at the import of click: only serve waits for it; these end.
    code = SIGHUP_ON_IMPORT.format(module="click")
    env = environment(migrated, sitecustomize_dir(tmp_path, code))
    result = run(*command, env=env, cwd=tmp_path, timeout=60)
    assert result.returncode == -signal.SIGHUP, result.stderr


# -------------------------------------------- variables the process environment pins


def test_cutover_variables_are_found_in_the_environment_whatever_their_case() -> None:
    environ = {"shadow_routes": "", "Flask_Routes": "a", "FLASK_MOUNT": "/x", "HOME": "/"}
    assert frozen_variables(environ) == ["FLASK_ROUTES", "SHADOW_ROUTES"]
    assert frozen_variables({"PATH": "/bin"}) == []


def test_cutover_settings_read_no_other_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("THREADS=abc\nAPP_ENV=production\nFLASK_ROUTES=order_detail\n")
    with pytest.raises(ConfigError, match="THREADS"):
        load_settings()
    assert read_cutover_settings().flask_routes == "order_detail"
