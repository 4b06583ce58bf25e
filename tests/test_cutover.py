"""The cut-over plan (``FLASK_ROUTES``, ``CANARY_ROUTES``, ``SHADOW_ROUTES``), pure and fast.

Parsing against a route table, the canary's client buckets, and ``systemctl reload``
sending SIGHUP. The switch, the canary and SIGHUP over real sockets and processes are
tested on the example feature's ported route, with the example's own tests (they go
when it is removed; a service's own ported routes deserve the same tests).
"""

from __future__ import annotations

import re

import pytest

from config import PROJECT_ROOT, ConfigError
from server.cutover import CutoverPlan, RoutePlan
from server.cutover.routing import bucket

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
