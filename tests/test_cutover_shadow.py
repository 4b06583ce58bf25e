"""Shadow comparison on live traffic (``SHADOW_ROUTES``, :mod:`server.cutover.shadow`).

Over real sockets against the live hybrid: a deliberately wrong native handler
is caught (counted, logged once with a readable diff), the primary response is
the same with the shadow on and off, unsafe methods and a busy pool are never
shadowed, a native shadow's headers never reach the client, and the response
observer the shadow uses sees both sides. The example feature's own ported
route is shadowed in the example's tests.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask, Response
from tornado import httputil
from tornado.routing import Matcher, Rule

from server.cutover.plan import CutoverPlan
from server.cutover.routing import CutoverMatcher
from server.cutover.shadow import ShadowRunner
from tests.support.routes import add_native_route, with_views
from tests.support.server import LiveServer, ServerFactory
from tornado_handlers.base import BaseHandler
from wsgi_bridge.compat import busy_threads
from wsgi_bridge.http1 import observe_response
from wsgi_bridge.testing import wait_for

PROJECT_ROOT = Path(__file__).resolve().parents[1]

TEST_ROUTE = "test_shadow"
"""The name of the test-only ported route (a Flask view and a native rule, one path)."""

TEST_PATH = "/_test/shadow/{id}"


class FlaskCalls:
    """The methods the test-only Flask view was called with (any thread)."""

    def __init__(self) -> None:
        self.methods: list[str] = []
        self.lock = threading.Lock()

    def add(self, method: str) -> None:
        with self.lock:
            self.methods.append(method)


def add_flask_view(calls: FlaskCalls) -> Callable[[Flask], None]:
    """A Flask ``GET``/``POST /_test/shadow/<id>`` answering ``{"id": id, "name": "flask"}``."""

    def add(app: Flask) -> None:
        @app.route("/_test/shadow/<int:item_id>", methods=["GET", "POST"])
        def shadow_item(item_id: int) -> dict[str, Any] | Response:
            from flask import request

            calls.add(request.method)
            data = {"id": item_id, "name": "flask", "tags": ["a", "b"]}
            if request.args.get("stream"):  # the same JSON, streamed (no Content-Length)
                body = json.dumps(data).encode()
                return Response(iter([body[:5], body[5:]]), mimetype="application/json")
            return data

    return add


class WrongHandler(BaseHandler):
    """The native side of the test route: its ``name`` differs from the Flask view's."""

    async def get(self, item_id: str) -> None:
        self.write_json({"id": int(item_id), "name": "native", "tags": ["a", "b"]})

    async def post(self, item_id: str) -> None:
        self.write_json({"id": int(item_id), "name": "native", "tags": ["a", "b"]})


class RightHandler(BaseHandler):
    """A native side answering as the Flask view does (``Vary`` left out: Flask adds
    ``Vary: Cookie`` once the session was looked at)."""

    shadow_ignore_headers = ("Vary",)

    async def get(self, item_id: str) -> None:
        self.write_json({"id": int(item_id), "name": "flask", "tags": ["a", "b"]})


class CookieHandler(WrongHandler):
    """A native side that sets a cookie and a header of its own (must never reach a client)."""

    ran = threading.Event()

    async def get(self, item_id: str) -> None:
        self.set_cookie("shadow_cookie", "from-the-shadow")
        self.set_header("X-Shadow-Only", "yes")
        await super().get(item_id)
        CookieHandler.ran.set()


def on_loop(server: LiveServer, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on the server's IOLoop thread and return its result (10 s at most)."""
    done: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def call() -> None:
        try:
            done.set_result(fn())
        except BaseException as error:
            done.set_exception(error)

    server.loop.call_soon_threadsafe(call)
    return done.result(10)


def set_plan(server: LiveServer, flask_routes: str = "", shadow_routes: str = "") -> None:
    """Follow a new cut-over plan, as SIGHUP would (on the IOLoop)."""
    cutover = server.hybrid.cutover
    plan = CutoverPlan.parse(flask_routes, "", shadow_routes, cutover.ported)
    on_loop(server, lambda: cutover.apply(plan))


def add_test_route(server: LiveServer, handler: type[BaseHandler]) -> None:
    """Make ``TEST_PATH`` a ported route named ``TEST_ROUTE`` of ``server``: a native
    rule in front of the Flask view, with the cut-over's matcher."""
    hybrid = server.hybrid
    add_native_route(hybrid, r"/_test/shadow/([0-9]+)", handler, name=TEST_ROUTE)
    rule = hybrid.application.wildcard_router.rules[0]
    cutover = hybrid.cutover
    cutover.ported = (*cutover.ported, TEST_ROUTE)
    rule.matcher = CutoverMatcher(rule, cutover)


def sample(server: LiveServer, name: str, **labels: str) -> float:
    """A sample of the server's registry (0 when absent)."""
    value = server.hybrid.metrics.registry.get_sample_value(name, labels)
    return value or 0.0


def compared(server: LiveServer, route: str, result: str) -> float:
    return sample(server, "shadow_comparisons_total", route=route, result=result)


def skipped(server: LiveServer, route: str, reason: str) -> float:
    return sample(server, "shadow_skipped_total", route=route, reason=reason)


def shadow_counts(server: LiveServer, route: str) -> list[float]:
    results = ("match", "mismatch", "error")
    reasons = ("busy", "too_large", "incomplete", "unsupported")
    return [compared(server, route, r) for r in results] + [
        skipped(server, route, r) for r in reasons
    ]


def idle(server: LiveServer) -> bool:
    """No shadow runs (read from the test thread: an int)."""
    shadow = server.hybrid.cutover.shadow
    return getattr(shadow, "in_flight", 0) == 0


def test_a_wrong_native_handler_is_counted_and_logged_once_with_a_readable_diff(
    live_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    calls = FlaskCalls()
    server = live_server(create_flask_app=with_views(add_flask_view(calls)))
    add_test_route(server, WrongHandler)
    set_plan(server, shadow_routes=TEST_ROUTE)
    caplog.set_level(logging.WARNING, logger="hybrid.cutover.shadow")
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for number in range(1, 4):
            response = client.get(
                TEST_PATH.format(id=number) + "?secret=query",
                headers={"X-Request-ID": f"shadowed-{number}"},
            )
            assert response.json()["name"] == "native"  # the primary answered
            assert wait_for(lambda n=number: compared(server, TEST_ROUTE, "mismatch") == n)
        metrics = client.get("/metrics").text
    assert f'shadow_comparisons_total{{result="mismatch",route="{TEST_ROUTE}"}} 3.0' in metrics
    assert compared(server, TEST_ROUTE, "match") == 0
    assert calls.methods == ["GET", "GET", "GET"]  # the Flask view ran as the shadow
    lines = [r for r in caplog.records if r.name == "hybrid.cutover.shadow"]
    assert len(lines) == 1, [r.getMessage() for r in lines]  # one per route and window
    assert lines[0].levelno == logging.WARNING
    # Structured fields (JSON keys with LOG_FORMAT=json), the primary's request id first.
    assert {
        key: getattr(lines[0], key)
        for key in ("request_id", "route", "result", "primary", "method", "path")
    } == {
        "request_id": "shadowed-1",
        "route": TEST_ROUTE,
        "result": "mismatch",
        "primary": "native",
        "method": "GET",
        "path": "/_test/shadow/1",
    }
    message = lines[0].getMessage()
    assert message.startswith(
        f"shadow mismatch on route {TEST_ROUTE}: GET /_test/shadow/1, primary native, "
        "flask and native differ (0 more mismatches"
    ), message
    assert "secret" not in message  # no query string
    assert "  body (JSON data):" in message
    assert '    -  "name": "flask",' in message
    assert '    +  "name": "native",' in message
    # The window over (made 0 s long here), the next line counts those left out.
    runner = server.hybrid.cutover.shadow
    assert isinstance(runner, ShadowRunner)
    runner.log_window = 0
    httpx.get(server.url + TEST_PATH.format(id=4), timeout=10)
    assert wait_for(lambda: compared(server, TEST_ROUTE, "mismatch") == 4)
    lines = [r for r in caplog.records if r.name == "hybrid.cutover.shadow"]
    assert len(lines) == 2
    assert "GET /_test/shadow/4, primary native, flask and native differ (2 more mismatches" in (
        lines[1].getMessage()
    )


def test_a_body_over_the_capture_limit_is_skipped_too_large(live_server: ServerFactory) -> None:
    calls = FlaskCalls()
    server = live_server(create_flask_app=with_views(add_flask_view(calls)))
    add_test_route(server, WrongHandler)
    set_plan(server, shadow_routes=TEST_ROUTE)
    runner = server.hybrid.cutover.shadow
    assert isinstance(runner, ShadowRunner)
    runner.capture_max_bytes = 10  # the JSON bodies are about 40 bytes
    response = httpx.get(server.url + TEST_PATH.format(id=1), timeout=10)
    assert response.json() == {"id": 1, "name": "native", "tags": ["a", "b"]}  # all of it
    assert wait_for(lambda: skipped(server, TEST_ROUTE, "too_large") == 1)
    assert shadow_counts(server, TEST_ROUTE) == [0, 0, 0, 0, 1, 0, 0]
    assert calls.methods == []  # the Flask side did not run


def comparable(response: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers (but ``Date`` and ``X-Request-ID``, new per response) and body."""
    headers = [
        (name, value)
        for name, value in response.headers.multi_items()
        if name.lower() not in {"date", "x-request-id"}
    ]
    return response.status_code, headers, response.content


def test_the_primary_response_is_the_same_with_the_shadow_on_and_off(
    live_server: ServerFactory,
) -> None:
    calls = FlaskCalls()
    server = live_server(create_flask_app=with_views(add_flask_view(calls)))
    add_test_route(server, WrongHandler)
    paths = [TEST_PATH.format(id=1), TEST_PATH.format(id=2) + "?q=1"]
    with httpx.Client(base_url=server.url, timeout=10) as client:
        off = [comparable(client.get(path)) for path in paths]
        set_plan(server, shadow_routes=TEST_ROUTE)
        on = [comparable(client.get(path)) for path in paths]
        assert wait_for(lambda: compared(server, TEST_ROUTE, "mismatch") == 2)
        set_plan(server, flask_routes=TEST_ROUTE)
        flask_off = [comparable(client.get(path)) for path in paths]
        set_plan(server, flask_routes=TEST_ROUTE, shadow_routes=TEST_ROUTE)
        flask_on = [comparable(client.get(path)) for path in paths]
        assert wait_for(lambda: compared(server, TEST_ROUTE, "mismatch") == 4)
    assert on == off  # the shadow (which disagreed) changed nothing the client saw
    assert flask_on == flask_off
    assert flask_off != off  # both sides were primary once
    assert calls.methods == ["GET"] * 6  # 2 shadows of the native side, 4 Flask primaries


def test_a_post_is_never_shadowed(live_server: ServerFactory) -> None:
    calls = FlaskCalls()
    server = live_server(create_flask_app=with_views(add_flask_view(calls)))
    add_test_route(server, WrongHandler)
    set_plan(server, shadow_routes=TEST_ROUTE)
    before = shadow_counts(server, TEST_ROUTE)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for number in range(3):
            posted = client.post(TEST_PATH.format(id=number), json={})
            assert posted.status_code == 200 and posted.json()["name"] == "native"
        # A GET afterwards is shadowed: once it is compared and no shadow runs,
        # a shadow of a POST would have been counted too.
        client.get(TEST_PATH.format(id=7))
        assert wait_for(lambda: compared(server, TEST_ROUTE, "mismatch") == 1)
        assert wait_for(lambda: idle(server))
    after = shadow_counts(server, TEST_ROUTE)
    assert [a - b for a, b in zip(after, before, strict=True)] == [0, 1, 0, 0, 0, 0, 0]
    assert calls.methods == ["GET"]  # the Flask side never saw a POST


def test_a_busy_pool_skips_the_shadow_and_the_request_is_answered(
    live_server: ServerFactory,
) -> None:
    calls = FlaskCalls()
    server = live_server(create_flask_app=with_views(add_flask_view(calls)))
    add_test_route(server, WrongHandler)  # answers on the IOLoop: needs no thread
    set_plan(server, shadow_routes=TEST_ROUTE)
    threads = server.hybrid.settings.threads
    started = threading.Barrier(threads + 1)
    release = threading.Event()

    def hold() -> None:
        started.wait(10)
        release.wait(30)

    jobs = [server.hybrid.executor.submit(hold) for _ in range(threads)]
    try:
        started.wait(10)  # every thread of the pool is held
        response = httpx.get(server.url + TEST_PATH.format(id=1), timeout=10)
        assert response.json() == {"id": 1, "name": "native", "tags": ["a", "b"]}
        assert wait_for(lambda: skipped(server, TEST_ROUTE, "busy") == 1)
    finally:
        release.set()
        for job in jobs:
            job.result(10)
    assert shadow_counts(server, TEST_ROUTE) == [0, 0, 0, 1, 0, 0, 0]
    assert calls.methods == []
    # With the threads free again, the next one is shadowed.
    assert wait_for(lambda: busy_threads(server.hybrid.executor) < threads - 1)
    httpx.get(server.url + TEST_PATH.format(id=2), timeout=10)
    assert wait_for(lambda: compared(server, TEST_ROUTE, "mismatch") == 1)
    assert calls.methods == ["GET"]


def test_primary_flask_runs_the_native_shadow_and_its_headers_never_reach_the_client(
    live_server: ServerFactory,
) -> None:
    calls = FlaskCalls()
    server = live_server(create_flask_app=with_views(add_flask_view(calls)))
    add_test_route(server, CookieHandler)
    set_plan(server, flask_routes=TEST_ROUTE, shadow_routes=TEST_ROUTE)
    CookieHandler.ran.clear()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        response = client.get(TEST_PATH.format(id=5))
        assert response.json() == {"id": 5, "name": "flask", "tags": ["a", "b"]}
        assert CookieHandler.ran.wait(10)  # the native side ran, as the shadow
        assert wait_for(lambda: compared(server, TEST_ROUTE, "mismatch") == 1)
        again = client.get(TEST_PATH.format(id=5))
        assert wait_for(lambda: compared(server, TEST_ROUTE, "mismatch") == 2)
    for answer in (response, again):
        assert "x-shadow-only" not in answer.headers
        assert "shadow_cookie" not in answer.headers.get("set-cookie", "")
    assert "shadow_cookie" not in client.cookies
    assert calls.methods == ["GET", "GET"]  # Flask served both, once each


def test_a_streamed_flask_primary_is_compared_whole(live_server: ServerFactory) -> None:
    # The bridge frames a chunked body itself; the observer must still see every chunk.
    calls = FlaskCalls()
    server = live_server(create_flask_app=with_views(add_flask_view(calls)))
    add_test_route(server, RightHandler)
    set_plan(server, flask_routes=TEST_ROUTE, shadow_routes=TEST_ROUTE)
    response = httpx.get(server.url + TEST_PATH.format(id=3) + "?stream=1", timeout=10)
    assert response.json()["name"] == "flask" and "content-length" not in response.headers
    assert wait_for(lambda: compared(server, TEST_ROUTE, "match") == 1)
    assert shadow_counts(server, TEST_ROUTE) == [1, 0, 0, 0, 0, 0, 0]


class Recorder:
    """A response observer that adds a header and records what it sees (IOLoop thread)."""

    def __init__(self) -> None:
        self.status = 0
        self.body = b""
        self.finished = False

    def on_headers(
        self, start_line: httputil.ResponseStartLine, headers: httputil.HTTPHeaders
    ) -> None:
        self.status = start_line.code
        headers.add("X-Observed", "yes")

    def on_data(self, chunk: bytes) -> None:
        self.body += chunk

    def on_finish(self) -> None:
        self.finished = True


class ObserveEverything(Matcher):
    """A rule matcher that matches nothing but has every request observed."""

    def __init__(self) -> None:
        self.recorders: dict[str, Recorder] = {}

    def match(self, request: httputil.HTTPServerRequest) -> dict[str, Any] | None:
        recorder = self.recorders[request.path] = Recorder()
        assert observe_response(request, recorder)
        return None


class StreamingHandler(BaseHandler):
    """A native response written in three flushes (headers first, then body chunks)."""

    async def get(self) -> None:
        for part in (b"one,", b"two,", b"three"):
            self.write(part)
            await self.flush()


def add_streaming_view(proceed: threading.Event) -> Callable[[Flask], None]:
    """A Flask ``GET /_test/stream``: a generator body whose later chunks wait for ``proceed``."""

    def add(app: Flask) -> None:
        def chunks() -> Iterator[bytes]:
            yield b"one,"
            proceed.wait(10)
            yield b"two,"
            yield b"three"

        def stream() -> Response:
            return Response(chunks(), mimetype="text/plain")

        app.add_url_rule("/_test/stream", "test_stream", stream)

    return add


def observed(server: LiveServer, paths: list[str]) -> list[tuple[httpx.Response, Recorder]]:
    """GET each path with every response observed; the responses and what was observed."""
    observer = ObserveEverything()
    server.hybrid.application.wildcard_router.rules.insert(0, Rule(observer, None))
    with httpx.Client(base_url=server.url, timeout=10) as client:
        responses = [client.get(path) for path in paths]
    pairs = [
        (response, observer.recorders[path])
        for response, path in zip(responses, paths, strict=True)
    ]
    for _, recorder in pairs:
        # The client may have the whole response before the server's finish() ran.
        assert wait_for(lambda r=recorder: r.finished)
    return pairs


def test_observe_response_sees_both_sides(live_server: ServerFactory) -> None:
    calls = FlaskCalls()
    server = live_server(create_flask_app=with_views(add_flask_view(calls)))
    add_test_route(server, WrongHandler)
    add_native_route(server.hybrid, "/_test/native-stream", StreamingHandler)
    set_plan(server, flask_routes=TEST_ROUTE)
    flask_path, native_path = TEST_PATH.format(id=2), "/_test/native-stream"
    (flask, flask_seen), (native, native_seen) = observed(server, [flask_path, native_path])
    assert flask.json()["name"] == "flask" and calls.methods == ["GET"]
    assert native.content == b"one,two,three"  # three writes after the head
    for response, recorder in ((flask, flask_seen), (native, native_seen)):
        assert response.headers["x-observed"] == "yes"  # a header added by the observer
        assert recorder.status == 200
        assert recorder.body == response.content


def test_observe_response_sees_a_streamed_flask_body(live_server: ServerFactory) -> None:
    proceed = threading.Event()
    server = live_server(create_flask_app=with_views(add_streaming_view(proceed)))
    observer = ObserveEverything()
    server.hybrid.application.wildcard_router.rules.insert(0, Rule(observer, None))
    with (
        httpx.Client(base_url=server.url, timeout=10) as client,
        client.stream("GET", "/_test/stream") as response,
    ):
        raw = response.iter_raw()
        received = next(raw)  # the head and the first chunk were sent ...
        proceed.set()  # ... before the view makes the others
        received += b"".join(raw)
    recorder = observer.recorders["/_test/stream"]
    assert wait_for(lambda: recorder.finished)
    assert received == b"one,two,three"
    assert recorder.body == received
