"""The harness in ``wsgi_bridge.testing`` fails a test when the server misbehaved."""

from __future__ import annotations

import pytest
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

from tests.bridge import apps
from wsgi_bridge import WSGIContainer
from wsgi_bridge.testing import BridgeServer, stream_download, workload


def _leak_a_slot(container: WSGIContainer) -> None:
    """Admit a request that never runs: its slot is never given back (IOLoop thread)."""
    request = HTTPServerRequest(
        start_line=RequestStartLine("GET", "/", "HTTP/1.1"), headers=HTTPHeaders({"Host": "t"})
    )
    exchange = container.start(request, lambda _exchange: None)
    assert exchange is not None and container.admit(exchange)


def _raise_on_the_ioloop() -> None:
    raise RuntimeError("boom on the IOLoop")


def test_stop_fails_when_a_slot_leaked_and_drain_timed_out() -> None:
    server = BridgeServer(apps.hello, drain_timeout=0.2).start()
    assert server.request("GET", "/")[2] == b"hello"
    server.call(lambda: _leak_a_slot(server.container))
    with pytest.raises(AssertionError) as info:
        server.stop()
    message = str(info.value)
    assert "drain() timed out after 0.2 s with in_flight=1" in message
    assert "admission slot leaked: in_flight=1" in message


def test_stop_fails_on_an_error_on_the_server_thread() -> None:
    server = BridgeServer(apps.hello).start()
    server.call(lambda: server.loop.add_callback(_raise_on_the_ioloop))  # type: ignore[union-attr]
    assert server.request("GET", "/")[0] == 200
    with pytest.raises(AssertionError, match="boom on the IOLoop"):
        server.stop()


def test_a_failing_test_keeps_its_own_error_with_the_server_problems_as_notes() -> None:
    with (
        pytest.raises(ValueError, match="the test's own failure") as info,
        BridgeServer(apps.hello, drain_timeout=0.2) as server,
    ):
        server.call(lambda: _leak_a_slot(server.container))
        raise ValueError("the test's own failure")
    assert any("in_flight=1" in note for note in info.value.__notes__)


def test_a_clean_run_stops_quietly() -> None:
    with BridgeServer(workload("download:200000"), kind="bridge-plain") as server:
        assert stream_download(server.port)[0] == 200_000


def test_unknown_workload_and_kind_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown workload"):
        workload("nothing")
    with pytest.raises(ValueError, match="kind"):
        BridgeServer(apps.hello, kind="gunicorn")
