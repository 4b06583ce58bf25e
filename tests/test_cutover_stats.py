"""``manage.py routes --stats`` (``server/cutover/stats.py``): the cut-over's figures, read from
a running server's ``/metrics``.

The server runs as users run it (``manage.py serve`` in a subprocess), with a test-only
ported route put in by a ``sitecustomize``: a Flask view ``/_test/items/<int:item_id>``
and its native port ``test_item``, each answering which side it is, so the test knows
which side served every request it sent and can check the command's counts.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from config import PROJECT_ROOT, load_settings
from server.cutover.metrics import CutoverMetrics
from server.cutover.plan import CutoverPlan
from server.cutover.stats import (
    STATS_HEADER,
    RouteStats,
    StatsError,
    format_stats,
    metrics_url,
    scrape,
    summarize,
)
from tests.support.cli import ServerProcess, environment, run, sitecustomize_dir

SITECUSTOMIZE = f"""
import sys

sys.path.insert(0, {str(PROJECT_ROOT)!r})  # as running manage.py does, a moment later

import app

_create_app = app.create_app


def create_app(*args, **kwargs):
    flask_app = _create_app(*args, **kwargs)
    flask_app.add_url_rule(
        "/_test/items/<int:item_id>", "test_items_detail", lambda item_id: {{"side": "flask"}}
    )
    return flask_app


app.create_app = create_app  # before server.build imports it (its default argument)

import server.build
from tornado.web import url
from tornado_handlers.base import BaseHandler

_make_routes = server.build.make_routes


class ItemHandler(BaseHandler):
    def get(self, item_id):
        self.write_json({{"side": "native"}})


def make_routes(shared, *args, **kwargs):
    rules = _make_routes(shared, *args, **kwargs)
    rules.insert(0, url(r"/_test/items/([0-9]+)", ItemHandler, shared.kwargs(), name="test_item"))
    return rules


server.build.make_routes = make_routes
"""
"""A ported route of the test's own, so the skeleton's tests need no feature."""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A directory holding the test-only ``sitecustomize``."""
    return sitecustomize_dir(tmp_path, SITECUSTOMIZE)


def start(servers: list[ServerProcess], site: Path, migrated: str, **env: str) -> int:
    """``manage.py serve`` with the test-only port on a free port; returns the port."""
    variables = {"PORT": "0", "THREADS": "4", **env}
    server = ServerProcess("--no-reload", env=environment(migrated, site, **variables))
    servers.append(server)
    return server.port()


def send(port: int, count: int) -> dict[str, int]:
    """``GET /_test/items/1`` ``count`` times, each as a new client (no cookie kept);
    return how many answers each side gave."""
    sides = {"native": 0, "flask": 0}
    for _ in range(count):
        answer = httpx.get(f"http://127.0.0.1:{port}/_test/items/1", timeout=10)
        assert answer.status_code == 200
        sides[answer.json()["side"]] += 1
    return sides


def free_port() -> int:
    """A TCP port the OS says is free now (for ``METRICS_PORT``, which cannot be 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stats_of(result_stdout: str) -> dict[str, dict[str, object]]:
    """``routes --stats --json``'s rows by route."""
    return {row["route"]: row for row in json.loads(result_stdout)}


# ------------------------------------------------------------------ over real sockets
def test_the_counts_are_what_each_side_served(
    site: Path, migrated: str, servers: list[ServerProcess]
) -> None:
    port = start(servers, site, migrated, CANARY_ROUTES="test_item:50")
    sent = send(port, 40)
    assert sent["native"] > 0 and sent["flask"] > 0, sent  # 2**-39 odds of a false alarm
    env = environment(migrated, PORT=str(port))  # the default URL: the main port
    result = run("routes", "--stats", "--json", env=env)
    assert result.returncode == 0, result.stderr
    row = stats_of(result.stdout)["test_item"]
    assert (row["native"], row["flask"]) == (sent["native"], sent["flask"])
    assert (row["state"], row["native_percent"], row["shadow_percent"]) == ("canary 50%", 50, 0)
    assert (row["match"], row["mismatch"], row["error"], row["skipped_total"]) == (0, 0, 0, 0)

    table = run("routes", "--stats", env=env)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == list(STATS_HEADER)
    assert set(lines[1]) == {"-", " "}
    assert [line.split() for line in lines if line.startswith("test_item ")] == [
        [
            "test_item",
            "canary",
            "50%",
            str(sent["native"]),
            str(sent["flask"]),
            "0",
            "0",
            "0",
            "0",
        ]
    ]


def test_a_switched_back_route_counts_flask_only(
    site: Path, migrated: str, servers: list[ServerProcess]
) -> None:
    port = start(servers, site, migrated, FLASK_ROUTES="test_item")
    assert send(port, 3) == {"native": 0, "flask": 3}
    result = run("routes", "--stats", "--json", env=environment(migrated, PORT=str(port)))
    assert result.returncode == 0, result.stderr
    row = stats_of(result.stdout)["test_item"]
    assert (row["state"], row["native"], row["flask"]) == ("flask", 0, 3)


def test_the_token_is_sent(site: Path, migrated: str, servers: list[ServerProcess]) -> None:
    port = start(servers, site, migrated, METRICS_TOKEN="s3cret-token")
    sent = send(port, 2)
    with_token = run(
        "routes",
        "--stats",
        "--json",
        env=environment(migrated, PORT=str(port), METRICS_TOKEN="s3cret-token"),
    )
    assert with_token.returncode == 0, with_token.stderr
    assert stats_of(with_token.stdout)["test_item"]["native"] == sent["native"] == 2

    url = f"http://127.0.0.1:{port}/metrics"
    without = run("routes", "--stats", env=environment(migrated, PORT=str(port)))
    assert without.returncode == 1
    assert without.stderr.strip().splitlines() == [
        f"Error: {url} answered 401 Unauthorized: set METRICS_TOKEN to the server's token"
    ]
    wrong = run(
        "routes", "--stats", env=environment(migrated, PORT=str(port), METRICS_TOKEN="nope")
    )
    assert wrong.returncode == 1
    assert wrong.stderr.strip().splitlines() == [
        f"Error: {url} answered 401 Unauthorized: METRICS_TOKEN is not the server's token"
    ]


def test_metrics_port_is_where_it_reads_and_the_main_port_answers_404(
    site: Path, migrated: str, servers: list[ServerProcess]
) -> None:
    metrics_port = free_port()
    port = start(servers, site, migrated, METRICS_PORT=str(metrics_port))
    send(port, 1)
    env = environment(migrated, PORT=str(port), METRICS_PORT=str(metrics_port))
    result = run("routes", "--stats", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert stats_of(result.stdout)["test_item"]["native"] == 1

    main = f"http://127.0.0.1:{port}/metrics"
    on_main = run("routes", "--stats", "--url", main, env=env)
    assert on_main.returncode == 1
    assert on_main.stderr.strip().splitlines() == [
        f"Error: {main} answered 404 Not Found: that port serves no /metrics (with METRICS_PORT "
        "set the metrics are on METRICS_HOST:METRICS_PORT; in production the main port serves "
        "them only with METRICS_TOKEN)"
    ]


def test_no_server_is_one_line_and_exit_1(migrated: str) -> None:
    port = free_port()  # nothing listens there
    result = run("routes", "--stats", env=environment(migrated, PORT=str(port)))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(
        f"Error: cannot read the metrics at http://127.0.0.1:{port}/metrics: "
    )
    assert "refused" in lines[0]


def test_url_needs_stats(migrated: str) -> None:
    result = run("routes", "--url", "http://127.0.0.1:1/metrics", env=environment(migrated))
    assert result.returncode == 2
    assert "--url goes with --stats" in result.stderr


# ------------------------------------------------------------------ the pieces
def test_summarize_reads_every_cutover_metric() -> None:
    """What the server's registry exposes (``generate_latest``), summed per route."""
    registry = CollectorRegistry()
    metrics = CutoverMetrics(registry)
    plan = CutoverPlan.parse("b_route", "", "a_route:25", ["a_route", "b_route", "c_route"])
    metrics.show(plan, ["a_route", "b_route", "c_route"])
    for _ in range(3):
        metrics.routed("a_route", "native")
    metrics.routed("a_route", "flask")
    metrics.routed("b_route", "flask")
    for result, times in (("match", 5), ("mismatch", 2), ("error", 1)):
        for _ in range(times):
            metrics.compared("a_route", result)
    metrics.skip("a_route", "busy")
    metrics.skip("a_route", "busy")
    metrics.skip("a_route", "too_large")
    rows = {row.route: row for row in summarize(generate_latest(registry).decode())}
    assert rows["a_route"] == RouteStats(
        "a_route", 100, 25, 3, 1, 5, 2, 1, {"busy": 2, "too_large": 1}
    )
    assert rows["a_route"].state == "native + shadow 25%"
    assert rows["a_route"].skipped_total == 3
    assert rows["b_route"] == RouteStats("b_route", 0, 0, flask=1)
    assert rows["b_route"].state == "flask"
    assert rows["c_route"] == RouteStats("c_route", 100, 0)
    table = format_stats(rows.values()).splitlines()
    assert table[2].split() == [
        "a_route",
        "native",
        "+",
        "shadow",
        "25%",
        "3",
        "1",
        "5",
        "2",
        "1",
        "3",
    ]


def test_summarize_adds_up_other_labels_and_ignores_other_metrics() -> None:
    """A multi-process scrape may carry more labels: every sample of a route adds up."""
    text = (
        "# TYPE cutover_requests_total counter\n"
        'cutover_requests_total{route="r",side="native",pid="1"} 2.0\n'
        'cutover_requests_total{route="r",side="native",pid="2"} 3.0\n'
        "# TYPE http_requests_total counter\n"
        'http_requests_total{route="/x",side="native",method="GET",status="200"} 7.0\n'
    )
    assert summarize(text) == [RouteStats("r", native=5)]
    assert summarize(text)[0].state == "unknown"


def test_not_the_prometheus_format_is_an_error() -> None:
    with pytest.raises(StatsError, match="not in the Prometheus text format"):
        summarize("<html>hello</html>\n")


def test_metrics_url_follows_the_settings() -> None:
    assert metrics_url(load_settings(port=8123)) == "http://127.0.0.1:8123/metrics"
    assert metrics_url(load_settings(host="0.0.0.0", port=80)) == "http://127.0.0.1:80/metrics"
    assert metrics_url(load_settings(host="::", port=80)) == "http://[::1]:80/metrics"
    assert (
        metrics_url(load_settings(port=80, metrics_port=9100, metrics_host="10.0.0.5"))
        == "http://10.0.0.5:9100/metrics"
    )


def test_a_url_that_is_no_http_url_is_refused() -> None:
    with pytest.raises(StatsError, match="expected http://host:port/metrics"):
        scrape("localhost:8000")
