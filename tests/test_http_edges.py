"""HTTP details both sides must get right, over real sockets.

``HEAD`` (RFC 9110 section 9.3.2), ``OPTIONS`` (section 9.3.7), ``405`` with
``Allow`` (section 15.5.6), the bytes of JSON bodies, what an oversized body
gets, and error pages in development (Flask must not re-raise into the bridge).
On the skeleton's routes and test-only ones (``/_test/...``, ``/api/_test/...``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import webtest
from flask import Flask, abort, request

from app.errors import map_exception
from app.extensions import csrf, db
from config import Settings, load_settings
from server.build import build_hybrid
from tests.support.routes import add_native_route, with_views
from tests.support.server import (
    TEST_SECRET_KEY,
    LiveServer,
    ServerFactory,
    assert_head_is_get_without_the_body,
    raw_exchange,
)
from tornado_handlers.base import BaseHandler

NATIVE_GET_ROUTES = ["/healthz", "/api/me", "/api/preferences"]
FLASK_MESSAGE_405 = "The method is not allowed for the requested URL."
NOT_AN_OBJECT = b'{"error":"the body must be a JSON object"}\n'


class ItemNotFound(LookupError):
    """Test-only domain error, mapped to 404 ``{"error": "no such item"}`` on both sides."""


class PostOnlyHandler(BaseHandler):
    """A test-only native handler with no ``get``: ``HEAD`` must be a 405."""

    def post(self) -> None:
        """``POST``: ``{"posted": true}``."""
        self.write_json({"posted": True})


class NestedJSONHandler(BaseHandler):
    """Test-only: ``GET`` writes :data:`NESTED` with ``write_json``."""

    def get(self) -> None:
        """:data:`NESTED`, as JSON."""
        self.write_json(NESTED)


NESTED = {"b": {"d": 1, "c": [1, 2.5, None]}, "a": "é"}
"""Keys out of order, nesting, a float, null and a non-ASCII string."""


class ItemHandler(BaseHandler):
    """Test-only: every item is unknown (:class:`ItemNotFound`)."""

    def get(self, item_id: str) -> None:
        """Raise :class:`ItemNotFound`."""
        raise ItemNotFound(item_id)


class EchoHandler(BaseHandler):
    """Test-only: ``POST`` answers 201 with the JSON object it was sent (``json_body``)."""

    def post(self) -> None:
        """The body, back."""
        self.write_json(self.json_body(), 201)


def add_test_views(app: Flask) -> None:
    """Test-only Flask JSON views under ``/api/_test/`` and the :class:`ItemNotFound` mapping.

    ``GET|POST /api/_test/items``; ``GET /api/_test/items/<int>`` raises
    :class:`ItemNotFound`; ``POST /api/_test/echo`` answers 201 with the JSON object
    it was sent (``request.get_json(silent=True)``), else 400.
    """
    map_exception(app, ItemNotFound, 404, lambda _error: {"error": "no such item"})

    @app.route("/api/_test/items", methods=["GET", "POST"])
    @csrf.exempt
    def items() -> dict[str, Any]:
        return {"items": []}

    @app.get("/api/_test/items/<int:item_id>")
    def item(item_id: int) -> dict[str, Any]:
        raise ItemNotFound(item_id)

    @app.post("/api/_test/echo")
    @csrf.exempt
    def echo() -> tuple[dict[str, Any], int]:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            abort(400, description="the body must be a JSON object")
        return body, 201


def serve_test_routes(live_server: ServerFactory, **overrides: Any) -> LiveServer:
    """Start the server with :func:`add_test_views` and the test-only native handlers.

    ``/_test/post-only``, ``/_test/json``, ``/api/_test/items/([0-9]+)`` (the
    native twin of Flask's item view) and ``/api/_test/native-echo``.
    """
    server = live_server(create_flask_app=with_views(add_test_views), **overrides)
    add_native_route(server.hybrid, "/_test/post-only", PostOnlyHandler)
    add_native_route(server.hybrid, "/_test/json", NestedJSONHandler)
    add_native_route(server.hybrid, r"/api/_test/items/([0-9]+)", ItemHandler)
    add_native_route(server.hybrid, "/api/_test/native-echo", EchoHandler)
    return server


@pytest.mark.parametrize("path", NATIVE_GET_ROUTES)
def test_head_on_native_routes_is_get_without_the_body(
    live_server: ServerFactory, path: str
) -> None:
    assert_head_is_get_without_the_body(live_server().url, path)


def test_head_without_get_is_405_with_allow(live_server: ServerFactory) -> None:
    server = serve_test_routes(live_server)
    with httpx.Client(base_url=server.url) as client:
        assert client.post("/_test/post-only").json() == {"posted": True}
        head = client.head("/_test/post-only")
        assert (head.status_code, head.content) == (405, b"")
        assert head.headers["allow"] == "OPTIONS, POST"
        get = client.get("/_test/post-only")
        assert (get.status_code, get.json()) == (405, {"error": FLASK_MESSAGE_405})
        assert get.headers["allow"] == "OPTIONS, POST"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/healthz", "GET, HEAD, OPTIONS"),
        ("POST", "/api/me", "GET, HEAD, OPTIONS"),
        ("PATCH", "/api/preferences", "GET, HEAD, OPTIONS, PUT"),
        ("DELETE", "/_test/post-only", "OPTIONS, POST"),
        ("FROB", "/healthz", "GET, HEAD, OPTIONS"),  # not in SUPPORTED_METHODS
    ],
)
def test_native_405_carries_allow_and_flasks_message(
    live_server: ServerFactory, method: str, path: str, allow: str
) -> None:
    server = serve_test_routes(live_server)
    response = httpx.request(method, server.url + path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert response.headers["content-type"] == "application/json"
    assert response.content == b'{"error":"%s"}\n' % FLASK_MESSAGE_405.encode()


def test_flask_405_keeps_allow_with_our_bodies(live_server: ServerFactory) -> None:
    """JSON under ``/api/``, the HTML page elsewhere; ``Allow`` on both, sorted."""
    server = serve_test_routes(live_server)
    with httpx.Client(base_url=server.url) as client:
        api = client.delete("/api/_test/items")
        assert (api.status_code, api.json()) == (405, {"error": FLASK_MESSAGE_405})
        assert api.headers["allow"] == "GET, HEAD, OPTIONS, POST"
        page = client.put("/")
        assert page.status_code == 405
        assert page.headers["content-type"].startswith("text/html")
        assert "not allowed" in page.text
        assert page.headers["allow"] == "GET, HEAD, OPTIONS"


@pytest.mark.parametrize("path", ["/healthz", "/api/me", "/api/preferences"])
def test_options_on_native_routes(live_server: ServerFactory, path: str) -> None:
    server = live_server()
    response = httpx.options(server.url + path)
    assert (response.status_code, response.content) == (200, b"")
    methods = set(response.headers["allow"].split(", "))
    assert {"GET", "HEAD", "OPTIONS"} <= methods


def test_native_json_has_flasks_bytes(live_server: ServerFactory) -> None:
    """Sorted keys, compact separators, a final newline: what ``jsonify`` writes."""
    server = serve_test_routes(live_server)
    native = httpx.get(server.url + "/_test/json")
    assert native.content == b'{"a":"\\u00e9","b":{"c":[1,2.5,null],"d":1}}\n'
    with server.hybrid.flask_app.app_context():
        expected = server.hybrid.flask_app.json.response(NESTED).get_data()
    assert native.content == expected
    preferences = httpx.get(server.url + "/api/preferences")
    assert preferences.content == b'{"theme":"light"}\n'
    unknown = httpx.get(server.url + "/api/_test/items/7")
    flask = webtest.TestApp(server.hybrid.flask_app).get("/api/_test/items/7", expect_errors=True)
    assert unknown.status_code == flask.status_int == 404
    assert unknown.content == flask.body == b'{"error":"no such item"}\n'


def test_oversized_bodies_get_what_the_readme_says(live_server: ServerFactory) -> None:
    """``MAX_BODY_SIZE``: Flask routes get the bridge's 413, native routes Tornado's bare 400.

    Tornado's ``HTTPServer`` refuses a ``Content-Length`` above
    ``max_body_size`` before any handler exists: a status line, no headers, and
    the connection closed. The bridge raises that limit for its own requests
    and answers 413 (``text/plain``, even under ``/api/``).
    """
    server = serve_test_routes(live_server, max_body_size=1024)
    body = b'{"body": "' + b"x" * 2000 + b'"}'
    head = "POST {} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    head += f"Content-Length: {len(body)}\r\n\r\n"
    native = raw_exchange(server, head.format("/api/_test/native-echo").encode() + body)
    assert native == b"HTTP/1.1 400 Bad Request\r\n\r\n"
    flask = raw_exchange(server, head.format("/api/_test/echo").encode() + body)
    status_line, _, rest = flask.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 413 Request Entity Too Large"
    assert b"content-type: text/plain" in rest.lower()
    small = httpx.post(server.url + "/api/_test/native-echo", json={"body": "fits"})
    assert small.status_code == 201  # under the limit: the handler runs


@pytest.fixture
def development_app(database_url: str) -> Iterator[Flask]:
    """The Flask app as ``APP_ENV=development`` configures it (debug on), plus failing views."""
    settings: Settings = load_settings(
        app_env="development", database_url=database_url, secret_key=TEST_SECRET_KEY, threads=2
    )
    with ThreadPoolExecutor(2) as executor:
        app = build_hybrid(settings, executor=executor).flask_app

        @app.get("/api/_test/raise")
        def api_raise() -> str:
            raise RuntimeError("api view failed on purpose")

        @app.get("/_test/raise")
        def page_raise() -> str:
            raise RuntimeError("page view failed on purpose")

        yield app
        with app.app_context():
            db.engine.dispose()


def test_debug_does_not_propagate_view_errors(
    development_app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    """In development a failing view gets the app's 500 (not the bridge's), traceback logged."""
    assert development_app.debug
    assert development_app.config["PROPAGATE_EXCEPTIONS"] is False
    client = webtest.TestApp(development_app)
    with caplog.at_level(logging.ERROR):
        api = client.get("/api/_test/raise", status=500)
        page = client.get("/_test/raise", status=500)
    assert api.json == {"error": "internal server error"}
    assert page.content_type == "text/html"
    assert "internal server error" in page.text
    assert "Traceback" not in page.text and "failed on purpose" not in page.text
    logged = [str(r.exc_info[1]) for r in caplog.records if r.exc_info]
    assert logged == ["api view failed on purpose", "page view failed on purpose"]


def test_testing_still_propagates_and_explicit_config_wins(flask_app: Flask) -> None:
    assert flask_app.testing and flask_app.config["PROPAGATE_EXCEPTIONS"] is True

    def factory(config_value: bool) -> Flask:
        flask_app = Flask(__name__)
        flask_app.config["PROPAGATE_EXCEPTIONS"] = config_value
        from app.errors import register_error_handlers

        register_error_handlers(flask_app)
        return flask_app

    assert factory(True).config["PROPAGATE_EXCEPTIONS"] is True
    assert factory(False).config["PROPAGATE_EXCEPTIONS"] is False


@pytest.mark.parametrize("content_type", ["text/plain", None, "application/x-www-form-urlencoded"])
def test_json_body_needs_a_json_content_type_on_both_sides(
    live_server: ServerFactory, content_type: str | None
) -> None:
    """Native ``json_body`` reads like Flask's ``get_json(silent=True)``: a JSON object
    sent without a JSON ``Content-Type`` is no JSON at all (400 on both sides)."""
    server = serve_test_routes(live_server)
    headers = {"Content-Type": content_type} if content_type else {}
    answers = {
        path: httpx.post(server.url + path, content=b'{"body": "x"}', headers=headers)
        for path in ("/api/_test/echo", "/api/_test/native-echo")
    }
    assert {(r.status_code, r.content) for r in answers.values()} == {(400, NOT_AN_OBJECT)}
    for json_type in ("application/problem+json", "application/json; charset=utf-8"):
        for path in ("/api/_test/echo", "/api/_test/native-echo"):
            ok = httpx.post(
                server.url + path, content=b'{"body": "x"}', headers={"Content-Type": json_type}
            )
            assert (ok.status_code, ok.json()) == (201, {"body": "x"}), (path, json_type)


def test_native_routes_send_no_etag_like_flask(live_server: ServerFactory) -> None:
    """Tornado would add an ETag and answer If-None-Match with 304; Flask does neither."""
    server = serve_test_routes(live_server)
    for path, status in [
        ("/_test/json", 200),
        ("/api/preferences", 200),
        ("/healthz", 200),
        ("/api/me", 401),
    ]:
        first = httpx.get(server.url + path)
        assert first.status_code == status
        assert "etag" not in first.headers
        again = httpx.get(server.url + path, headers={"If-None-Match": "*"})
        assert again.status_code == status


def test_native_responses_carry_the_request_id(live_server: ServerFactory) -> None:
    """Every native answer, errors included, says ``X-Request-ID``: the client's if valid."""
    server = serve_test_routes(live_server)
    for path in ("/healthz", "/api/me", "/api/preferences", "/_test/json", "/api/_test/items/7"):
        fresh = httpx.get(server.url + path)
        assert fresh.headers["x-request-id"], path
        echoed = httpx.get(server.url + path, headers={"X-Request-ID": "abc-123"})
        assert echoed.headers["x-request-id"] == "abc-123", path
    assert httpx.post(server.url + "/api/me").headers["x-request-id"]  # a 405
