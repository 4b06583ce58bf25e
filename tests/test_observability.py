"""Structured logs, the request id on every line of a request, and ``GET /metrics``.

Over real sockets: the in-thread live server for one process, ``manage.py serve``
processes for the multi-process sum.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import secrets
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from flask import Flask, g, request
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

from config import load_settings
from server.logs import configure_logging
from server.metrics import child_exited, metrics_rules
from tests.support.cli import ServerProcess, environment
from tests.support.routes import add_native_route, with_views
from tests.support.server import ServerFactory
from tornado_handlers.base import BaseHandler
from wsgi_bridge.access_log import log_access
from wsgi_bridge.testing import wait_for

log = logging.getLogger("app.test_observability")

Lines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def json_logs() -> Iterator[Lines]:
    """The service's JSON logging (``LOG_FORMAT=json``) into a buffer; restored after."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    buffer = io.StringIO()
    configure_logging("INFO", "json", stream=buffer)

    def lines() -> list[dict[str, Any]]:
        return [json.loads(line) for line in buffer.getvalue().splitlines() if line]

    yield lines
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    structlog.reset_defaults()


def add_views(app: Flask) -> None:
    def work() -> dict[str, Any]:
        log.info("flask view working")
        return {"g": g.request_id, "environ": request.environ["wsgi_bridge.request_id"]}

    app.add_url_rule("/_test/obs/flask", "test_obs_flask", work)
    app.add_url_rule("/_test/items/<int:item_id>", "test_obs_item", lambda item_id: "item")


class WorkHandler(BaseHandler):
    """Logs on the IOLoop, then from a blocking call on the shared executor."""

    async def get(self, *_: str) -> None:
        log.info("native handler working")
        await self.run_in_executor(log.info, "native blocking work")
        self.write_json({"ok": True})


def test_request_id_comes_back_and_tags_every_line_of_its_request_on_both_sides(
    live_server: ServerFactory, json_logs: Lines
) -> None:
    server = live_server(create_flask_app=with_views(add_views))
    add_native_route(server.hybrid, r"/_test/obs/native", WorkHandler)
    headers = {"X-Request-ID": "client-native-1", "User-Agent": "obs-test/1"}
    native = httpx.get(server.url + "/_test/obs/native", headers=headers)
    headers["X-Request-ID"] = "client-flask-1"
    flask = httpx.get(server.url + "/_test/obs/flask", headers=headers)
    assert native.headers["X-Request-ID"] == "client-native-1"
    assert flask.headers["X-Request-ID"] == "client-flask-1"
    # g.request_id and the environ key, read inside the Flask view.
    assert flask.json() == {"g": "client-flask-1", "environ": "client-flask-1"}

    def of(request_id: str) -> dict[str, dict[str, Any]]:
        return {line["event"]: line for line in json_logs() if line.get("request_id") == request_id}

    ids = ("client-native-1", "client-flask-1")
    assert wait_for(lambda: all("request" in of(request_id) for request_id in ids))
    native_lines, flask_lines = of("client-native-1"), of("client-flask-1")
    assert {"native handler working", "native blocking work", "request"} <= native_lines.keys()
    assert {"flask view working", "request"} <= flask_lines.keys()
    for lines, side, path in (
        (native_lines, "native", "/_test/obs/native"),
        (flask_lines, "flask", "/_test/obs/flask"),
    ):
        access = lines["request"]
        assert access["logger"] == "tornado.access" and access["level"] == "info"
        assert (access["side"], access["method"], access["path"], access["status"]) == (
            side,
            "GET",
            path,
            200,
        )
        assert access["client"] == "127.0.0.1" and access["user_agent"] == "obs-test/1"
        assert isinstance(access["bytes"], int) and access["bytes"] > 0
        assert isinstance(access["duration_ms"], float)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", access["timestamp"])
    # A request without an id gets a new one, returned and logged.
    plain = httpx.get(server.url + "/_test/obs/flask")
    generated = plain.headers["X-Request-ID"]
    assert plain.json()["g"] == generated
    assert wait_for(lambda: "flask view working" in of(generated))


def scrape(url: str, token: str | None = None) -> dict[tuple[str, frozenset[Any]], float]:
    """GET ``url``/metrics; samples by (name, labels)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(url + "/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def labels(**values: str) -> frozenset[Any]:
    return frozenset(values.items())


def test_metrics_count_each_side_by_route_pattern_behind_a_token(
    live_server: ServerFactory,
) -> None:
    token = secrets.token_urlsafe(24)
    server = live_server(create_flask_app=with_views(add_views), metrics_token=SecretStr(token))
    add_native_route(server.hybrid, r"/_test/native/([0-9]+)", WorkHandler)
    assert httpx.get(server.url + "/_test/native/5").status_code == 200
    assert httpx.get(server.url + "/_test/items/7").status_code == 200
    assert httpx.get(server.url + "/no/such/page/12").status_code == 404
    refused = httpx.get(server.url + "/metrics")
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = httpx.get(server.url + "/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401

    samples = scrape(server.url, token)
    native = labels(side="native", route="/_test/native/([0-9]+)", method="GET", status="200")
    flask = labels(side="flask", route="/_test/items/<int:item_id>", method="GET", status="200")
    unmatched = labels(side="flask", route="<unmatched>", method="GET", status="404")
    for key in (native, flask, unmatched):
        assert samples[("http_requests_total", key)] == 1
    histogram = labels(side="flask", route="/_test/items/<int:item_id>")
    assert samples[("http_request_duration_seconds_count", histogram)] == 1
    assert not any("/_test/items/7" in str(key) for key in samples)  # never the raw path
    for gauge in ("executor_threads_busy", "wsgi_bridge_queue_length", "websockets_open"):
        assert samples[(gauge, frozenset())] >= 0
    assert samples[("wsgi_bridge_requests_shed_total", frozenset())] == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_metrics_port_serves_metrics_apart_from_the_main_port(live_server: ServerFactory) -> None:
    admin_port = _free_port()
    server = live_server(metrics_port=admin_port)
    assert httpx.get(server.url + "/healthz").status_code == 200
    assert httpx.get(server.url + "/metrics").status_code == 404  # the main port: Flask's 404
    samples = scrape(f"http://127.0.0.1:{admin_port}")
    healthz = labels(side="native", route="/healthz", method="GET", status="200")
    assert samples[("http_requests_total", healthz)] == 1


def test_production_serves_metrics_only_when_configured(database_url: str) -> None:
    base = {
        "app_env": "production",
        "secret_key": secrets.token_urlsafe(48),
        "database_url": database_url,
    }
    metrics: Any = object()
    assert metrics_rules(load_settings(**base), metrics) == []
    (rule,) = metrics_rules(load_settings(**base, metrics_token="t" * 32), metrics)
    assert rule.name == "metrics"
    assert metrics_rules(load_settings(**base, metrics_port=9100), metrics) == []
    assert len(metrics_rules(load_settings(**{**base, "app_env": "testing"}), metrics)) == 1
    assert load_settings(**base).log_format == "json"
    assert load_settings(**{**base, "app_env": "development"}).log_format == "text"


def test_two_processes_sharing_a_multiproc_dir_add_up(
    migrated: str,
    servers: list[ServerProcess],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    directory = tmp_path / "prometheus"
    directory.mkdir()
    env = environment(migrated, PORT="0", PROMETHEUS_MULTIPROC_DIR=str(directory))
    servers.extend(ServerProcess(env=env) for _ in range(2))
    urls = [f"http://127.0.0.1:{server.port()}" for server in servers]
    for url in urls:
        assert httpx.get(url + "/healthz").status_code == 200
        assert httpx.get(url + "/").status_code == 200
    samples = scrape(urls[0])
    native = labels(side="native", route="/healthz", method="GET", status="200")
    flask = labels(side="flask", route="/", method="GET", status="200")
    assert samples[("http_requests_total", native)] == 2
    assert samples[("http_requests_total", flask)] == 2
    assert samples[("http_request_duration_seconds_count", labels(side="flask", route="/"))] == 2

    # The supervisor's on_child_exit: a dead process's gauges go, its counts stay.
    second = servers[1]
    assert second.stop(15)[0] == 0
    assert list(directory.glob(f"gauge_livesum_{second.process.pid}.db"))
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    child_exited(second.process.pid)
    assert not list(directory.glob(f"gauge_livesum_{second.process.pid}.db"))
    assert scrape(urls[0])[("http_requests_total", native)] == 2
    assert os.listdir(directory)


def test_text_format_shows_the_access_fields(json_logs: Lines) -> None:
    buffer = io.StringIO()
    configure_logging("INFO", "text", stream=buffer)  # json_logs restores logging after
    request = HTTPServerRequest(
        start_line=RequestStartLine("GET", "/items?page=2", "HTTP/1.1"),
        headers=HTTPHeaders({"Host": "h", "User-Agent": "ua/1", "X-Request-ID": "r-7"}),
    )
    log_access(request, 201, 12, "flask")
    (line,) = buffer.getvalue().splitlines()
    assert " request " in line and "[tornado.access]" in line and "\x1b[" not in line
    for field in (
        "request_id=r-7",
        "method=GET",
        "path='/items?page=2'",  # ConsoleRenderer quotes values with special characters
        "status=201",
        "bytes=12",
        "side=flask",
        "user_agent=ua/1",
        "duration_ms=",
        "client=",
    ):
        assert field in line


def test_log_format_is_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_FORMAT", "JSON")  # bad values: tests/test_config.py
    assert load_settings().log_format == "json"
