"""The parity helper itself (``tests/support/parity.py``): what it compares and how it reports.

On hand-made replies, and over real sockets on the skeleton's native routes
(``/api/me``, ``/api/preferences``) and Flask pages.
"""

from __future__ import annotations

import pytest
from flask import Flask

from server.cutover.compare import bounded
from tests.support.parity import (
    ParityRequest,
    Reply,
    assert_parity,
    assert_same,
    differences,
    native_handler_for,
)
from tests.support.routes import with_views
from tests.support.server import ServerFactory
from tornado_handlers.account import MeHandler, PreferencesHandler
from tornado_handlers.health import HealthHandler


def test_native_handler_for_names_the_native_rule_or_none_for_flask(
    live_server: ServerFactory,
) -> None:
    application = live_server().hybrid.application
    assert native_handler_for(application, "/api/me") is MeHandler
    assert native_handler_for(application, "/api/preferences?x=1") is PreferencesHandler
    assert native_handler_for(application, "/healthz") is HealthHandler
    assert native_handler_for(application, "/") is None
    assert native_handler_for(application, "/auth/login") is None


def add_divergent_preferences(app: Flask) -> None:
    """A Flask ``GET /api/preferences`` that disagrees with the native one."""

    @app.get("/api/preferences")
    def preferences() -> tuple[dict[str, object], int, dict[str, str]]:
        return {"theme": "pink"}, 200, {"Cache-Control": "no-store"}


def test_the_helper_fails_with_a_readable_diff(live_server: ServerFactory) -> None:
    server = live_server(create_flask_app=with_views(add_divergent_preferences))
    with pytest.raises(AssertionError) as raised:
        assert_parity(server, "GET", "/api/preferences")
    message = str(raised.value)
    assert message.startswith(
        "GET /api/preferences: the native handler differs from the Flask view\n"
    ), message
    assert "  header cache-control: flask 'no-store', native None" in message
    assert "  body (JSON data):" in message
    assert "    --- flask" in message and "    +++ native" in message
    assert '    -  "theme": "pink"' in message
    assert '    +  "theme": "light"' in message


def test_the_helper_refuses_to_compare_flask_with_itself(live_server: ServerFactory) -> None:
    server = live_server()
    with pytest.raises(AssertionError, match="no native rule serves /auth/login"):
        assert_parity(server, "GET", "/auth/login")
    with pytest.raises(AssertionError, match="no native rule serves /auth/register"):
        assert_parity(server, "GET", "/auth/login", native_path="/auth/register")


def test_the_helper_names_both_paths(live_server: ServerFactory) -> None:
    server = live_server()
    with pytest.raises(AssertionError) as raised:
        assert_parity(server, "GET", "/auth/login", native_path="/api/me")
    assert str(raised.value).startswith(
        "GET /auth/login (native /api/me): the native handler differs"
    )


def reply(side: str, status: int = 200, body: bytes = b"{}", **headers: str) -> Reply:
    """A hand-made :class:`Reply` (``content_type=`` becomes ``content-type``; JSON by default)."""
    headers.setdefault("content_type", "application/json")
    return Reply(side, status, {k.replace("_", "-"): v for k, v in headers.items()}, body)


def test_json_bodies_compare_as_data() -> None:
    flask = reply("flask", body=b'{"b": 1, "a": [1, 2]}\n')
    native = reply("native", body=b'{"a":[1,2],"b":1}')
    assert differences(flask, native) == []


def test_ignored_fields_and_wildcards() -> None:
    flask = reply("flask", body=b'{"id": 1, "at": "x", "items": [{"t": 1}, {"t": 2}]}')
    native = reply("native", body=b'{"id": 1, "at": "y", "items": [{"t": 3}, {"t": 4}]}')
    assert differences(flask, native, ignore=["at", "items.*.t"]) == []
    assert differences(flask, native, ignore=["at"])[0] == "body (JSON data, ignoring at):"


def test_the_json_paths_that_differ_are_named_before_the_diff_so_a_cut_one_still_shows_them() -> (
    None
):
    junk = ", ".join(str(n) for n in range(2000))
    flask = reply("flask", body=b'{"a": 1, "status": "ok", "items": [{"id": 1}, {"id": 2}]}')
    native = reply(
        "native",
        body=b'{"a": 1, "junk": [%s], "status": "WRONG", "items": [{"id": 1}, {"id": 3}]}'
        % junk.encode(),
    )
    cut = bounded(differences(flask, native))  # what the shadow logs: 40 lines
    assert cut[:2] == ["body (JSON data):", "  differs at: status, items.1.id, junk (native only)"]
    assert cut[-1].endswith("more lines cut")
    many = reply("native", body=b"{%s}" % ", ".join(f'"k{n}": {n}' for n in range(15)).encode())
    assert differences(reply("flask", body=b"{}"), many)[1] == (
        "  differs at: " + ", ".join(f"k{n} (native only)" for n in range(10)) + ", +5 more"
    )


def test_status_headers_and_non_json_bodies_are_reported() -> None:
    flask = reply("flask", 404, b"<h1>gone</h1>", content_type="text/html", location="/a")
    native = reply("native", 200, b"<h1>here</h1>", content_type="text/html")
    request = ParityRequest("GET", "/x")
    with pytest.raises(AssertionError) as raised:
        assert_same(request, flask, native)
    assert str(raised.value).splitlines() == [
        "GET /x: the native handler differs from the Flask view",
        "  status: flask 404, native 200",
        "  header location: flask '/a', native None",
        "  body (bytes):",
        "    --- flask",
        "    +++ native",
        "    @@ -1 +1 @@",
        "    -<h1>gone</h1>",
        "    +<h1>here</h1>",
    ]


def test_same_bytes_reports_equal_data_spelled_differently() -> None:
    flask = reply("flask", body=b'{"a":1,"b":2}\n')
    native = reply("native", body=b'{"b": 2, "a": 1}')
    assert differences(flask, native) == []
    assert differences(flask, native, same_bytes=True) == [
        "body (bytes of equal JSON data):",
        '  flask  b\'{"a":1,"b":2}\\n\'',
        '  native b\'{"b": 2, "a": 1}\'',
    ]
    assert differences(flask, reply("native", body=flask.body), same_bytes=True) == []


def test_json_against_html_is_a_byte_difference() -> None:
    flask = reply("flask", 500, b'{"error": "internal server error"}')
    native = reply("native", 500, b"<html>500</html>", content_type="text/html")
    found = differences(flask, native)
    assert found[0] == "header content-type: flask 'application/json', native 'text/html'"
    assert found[1] == "body (bytes):"
