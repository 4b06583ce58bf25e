"""Unit tests of the bridge's pure pieces (no sockets, no threads except input pipe)."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import select
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import tornado.web
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

from wsgi_bridge import WSGIFallbackHandler, access_log_function, ensure_request_id
from wsgi_bridge.access_log import log_access
from wsgi_bridge.environ import (
    DEFAULT_SERVER_SOFTWARE,
    NotMounted,
    build_environ,
    split_host,
    split_script_name,
)
from wsgi_bridge.errors import ClientDisconnected, WSGIAppError
from wsgi_bridge.file_wrapper import FileWrapper
from wsgi_bridge.framing import http_date, plan_response
from wsgi_bridge.headers import parse_status, validate_headers
from wsgi_bridge.http1 import split_absolute_form
from wsgi_bridge.input import StreamingInput
from wsgi_bridge.mount import ROUTE_ENVIRON_KEY, AccessRecord, WSGIFallback
from wsgi_bridge.proxy import TrustedProxies, resolve_forwarded
from wsgi_bridge.request_id import REQUEST_ID_ATTR, is_valid_request_id
from wsgi_bridge.testing import wait_for


def make_request(
    uri: str = "/",
    method: str = "GET",
    headers: list[tuple[str, str]] | None = None,
    version: str = "HTTP/1.1",
    peer: tuple[str, int] = ("10.1.2.3", 54321),
    protocol: str = "http",
) -> HTTPServerRequest:
    hdrs = HTTPHeaders()
    for name, value in headers or [("Host", "example.test:8080")]:
        hdrs.add(name, value)
    context = SimpleNamespace(address=peer, remote_ip=peer[0], protocol=protocol)
    connection = SimpleNamespace(context=context)
    return HTTPServerRequest(
        start_line=RequestStartLine(method, uri, version), headers=hdrs, connection=connection
    )


def environ_for(request: HTTPServerRequest, **kwargs: Any) -> dict[str, Any]:
    return build_environ(request, wsgi_input=io.BytesIO(), request_id="rid-1", **kwargs)


# --------------------------------------------------------------------------- environ
def test_environ_cgi_values_are_native_strings() -> None:
    req = make_request("/caf%C3%A9/a%2Fb?x=1&y=%20", headers=[("Host", "example.test:8080")])
    env = environ_for(req)
    assert env["REQUEST_METHOD"] == "GET"
    assert env["PATH_INFO"] == "/caf\xc3\xa9/a/b"  # decoded, then latin-1 (PEP 3333)
    assert env["QUERY_STRING"] == "x=1&y=%20"  # raw
    assert env["REQUEST_URI"] == env["RAW_URI"] == "/caf%C3%A9/a%2Fb?x=1&y=%20"
    assert env["SCRIPT_NAME"] == ""
    assert env["SERVER_NAME"] == "example.test"
    assert env["SERVER_PORT"] == "8080"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["REMOTE_ADDR"] == "10.1.2.3"
    assert env["REMOTE_PORT"] == "54321"
    assert env["HTTP_HOST"] == "example.test:8080"
    assert env["wsgi.version"] == (1, 0)
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.multithread"] is True
    assert env["wsgi.multiprocess"] is False
    assert env["wsgi.run_once"] is False
    assert env["wsgi.input_terminated"] is True
    assert env["HTTP_X_REQUEST_ID"] == "rid-1"
    for key, value in env.items():
        if key.isupper():
            assert type(value) is str, key


def test_environ_content_headers_and_absence() -> None:
    env = environ_for(make_request(headers=[("Host", "h")]))
    assert "CONTENT_TYPE" not in env and "CONTENT_LENGTH" not in env
    assert env["SERVER_PORT"] == "80"
    env = environ_for(
        make_request(
            method="POST",
            headers=[("Host", "h"), ("Content-Type", "text/plain"), ("Content-Length", "3")],
        )
    )
    assert env["CONTENT_TYPE"] == "text/plain"
    assert env["CONTENT_LENGTH"] == "3"
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env


def test_environ_chunked_has_no_content_length() -> None:
    env = environ_for(
        make_request(method="POST", headers=[("Host", "h"), ("Transfer-Encoding", "chunked")])
    )
    assert "CONTENT_LENGTH" not in env
    assert env["wsgi.input_terminated"] is True


def test_environ_content_length_dropped_only_for_chunked_transfer_encoding() -> None:
    """``Transfer-Encoding: chunked`` voids ``Content-Length``; the word elsewhere does not."""
    chunked = [("Host", "h"), ("Transfer-Encoding", "chunked"), ("Content-Length", "5")]
    assert "CONTENT_LENGTH" not in environ_for(make_request(method="POST", headers=chunked))
    noted = [("Host", "h"), ("X-Note", "chunked"), ("Content-Length", "5")]
    assert environ_for(make_request(method="POST", headers=noted))["CONTENT_LENGTH"] == "5"


def test_environ_input_and_errors_are_the_given_streams() -> None:
    """``wsgi.input`` is the given object; ``wsgi.errors`` the given stream, else stderr."""
    body, errors = io.BytesIO(b"x"), io.StringIO()
    env = build_environ(make_request(), wsgi_input=body, request_id="r", errors=errors)
    assert env["wsgi.input"] is body and env["wsgi.errors"] is errors
    assert build_environ(make_request(), wsgi_input=body, request_id="r")["wsgi.errors"] is (
        sys.stderr
    )


def test_environ_repeated_headers_and_cookie_join() -> None:
    env = environ_for(
        make_request(
            headers=[
                ("Host", "h"),
                ("Accept", "text/html"),
                ("Accept", "text/plain"),
                ("Cookie", "a=1"),
                ("Cookie", "b=2"),
            ]
        )
    )
    assert env["HTTP_ACCEPT"] == "text/html, text/plain"
    assert env["HTTP_COOKIE"] == "a=1; b=2"


def test_environ_drops_underscore_header_names() -> None:
    env = environ_for(
        make_request(headers=[("Host", "h"), ("X_Forwarded_For", "6.6.6.6"), ("X-Real", "1")])
    )
    assert "HTTP_X_FORWARDED_FOR" not in env
    assert env["HTTP_X_REAL"] == "1"


def test_environ_does_not_mutate_request() -> None:
    req = make_request(method="POST", headers=[("Host", "h"), ("Content-Type", "a/b")])
    before = list(req.headers.get_all())
    environ_for(req, script_name="")
    assert list(req.headers.get_all()) == before
    assert req.path == "/"


def test_environ_invalid_incoming_request_id_replaced() -> None:
    req = make_request(headers=[("Host", "h"), ("X-Request-ID", "bad id;x")])
    rid = ensure_request_id(req)
    env = build_environ(req, wsgi_input=io.BytesIO(), request_id=rid)
    assert env["HTTP_X_REQUEST_ID"] == rid != "bad id;x"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/legacy", ("/legacy", "")),
        ("/legacy/", ("/legacy", "/")),
        ("/legacy/a/b", ("/legacy", "/a/b")),
    ],
)
def test_split_script_name_inside(path: str, expected: tuple[str, str]) -> None:
    assert split_script_name(path, "/legacy") == expected


@pytest.mark.parametrize("path", ["/legacyx", "/", "/other/legacy", "/leg"])
def test_split_script_name_outside(path: str) -> None:
    with pytest.raises(NotMounted):
        split_script_name(path, "/legacy")


def test_not_mounted_carries_the_path_outside_the_mount() -> None:
    """:class:`NotMounted` names the decoded path that is outside ``script_name``."""
    with pytest.raises(NotMounted) as info:
        split_script_name("/legacyx/a", "/legacy")
    assert info.value.args == ("/legacyx/a",)


def test_split_host_forms() -> None:
    assert split_host("example.com", "80") == ("example.com", "80")
    assert split_host("example.com:81", "80") == ("example.com", "81")
    assert split_host("[::1]:8443", "443") == ("[::1]", "8443")
    assert split_host("[::1]", "443") == ("[::1]", "443")
    # Bracketed (IPv6) forms: a port only when all digits after "]:", else the default.
    assert split_host("[::1]:8", "443") == ("[::1]", "8")
    assert split_host("[::1]:", "443") == ("[::1]", "443")
    assert split_host("[::1]:x", "443") == ("[::1]", "443")
    assert split_host("[::1]:8:9", "443") == ("[::1]", "443")
    assert split_host("[::1]:]", "443") == ("[::1]", "443")  # the literal ends at its "]"
    # An unclosed "[" is no IPv6 literal and has no port: it stays whole.
    assert split_host("[::1", "443") == ("[::1", "443")
    assert split_host("[::1:8443", "443") == ("[::1:8443", "443")
    # Otherwise the port follows the last ":", all digits, after a non-empty name; an
    # empty port is the default (RFC 3986 section 3.2.3); anything else stays whole,
    # with the default port.
    assert split_host("a:b:81", "80") == ("a:b", "81")
    assert split_host("example.com:", "80") == ("example.com", "80")
    assert split_host("example.com:x", "80") == ("example.com:x", "80")
    assert split_host(":81", "80") == (":81", "80")


# --------------------------------------------------------------------------- proxy
def test_forwarded_ignored_from_untrusted_peer() -> None:
    env = environ_for(
        make_request(headers=[("Host", "h"), ("X-Forwarded-For", "1.2.3.4")]),
        trusted_proxies=TrustedProxies(["127.0.0.1"]),
    )
    assert env["REMOTE_ADDR"] == "10.1.2.3"


def test_forwarded_rightmost_untrusted_hop() -> None:
    req = make_request(
        headers=[
            ("Host", "internal:8000"),
            ("X-Forwarded-For", "6.6.6.6, 1.2.3.4, 10.0.0.7"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "public.example"),
        ]
    )
    env = environ_for(req, trusted_proxies=TrustedProxies(["10.0.0.0/8"]))
    assert env["REMOTE_ADDR"] == "1.2.3.4"  # 6.6.6.6 may be forged by the client
    assert "REMOTE_PORT" not in env
    assert env["wsgi.url_scheme"] == "https"
    assert env["HTTP_HOST"] == "public.example"
    assert env["SERVER_NAME"] == "public.example"
    assert env["SERVER_PORT"] == "443"


@pytest.mark.parametrize("address", ["", None, "/run/proxy.sock", b"\0proxy"])
def test_forwarded_from_a_peer_without_ip_and_port(address: object) -> None:
    """A connection whose address is no ``(ip, port)`` (a Unix socket: Tornado gives
    ``""``, the client's socket path or an abstract name, and ``remote_ip``
    ``"0.0.0.0"``) is judged by ``remote_ip``: trusted, its ``X-Forwarded-For`` is
    honoured, and there is no ``REMOTE_PORT``."""
    req = make_request(headers=[("Host", "h"), ("X-Forwarded-For", "1.2.3.4")], peer=("0.0.0.0", 0))
    connection: Any = req.connection
    connection.context.address = address
    assert "REMOTE_PORT" not in environ_for(req)
    env = environ_for(req, trusted_proxies=TrustedProxies(["0.0.0.0"]))
    assert env["REMOTE_ADDR"] == "1.2.3.4"
    assert "REMOTE_PORT" not in env


@pytest.mark.parametrize(
    ("forwarded", "server"),
    [
        ([("X-Forwarded-Host", "public.example")], ("public.example", "80")),
        ([("X-Forwarded-Host", "public.example:8080")], ("public.example", "8080")),
        (
            [("X-Forwarded-Host", "public.example"), ("X-Forwarded-Proto", "https")],
            ("public.example", "443"),
        ),
    ],
)
def test_forwarded_host_port_defaults_to_the_forwarded_schemes(
    forwarded: list[tuple[str, str]], server: tuple[str, str]
) -> None:
    """A trusted ``X-Forwarded-Host`` without a port gives ``SERVER_PORT`` ``80`` for
    ``http`` and ``443`` for ``https`` (the scheme after ``X-Forwarded-Proto``), not
    the port the request arrived on."""
    req = make_request(headers=[("Host", "internal:8000"), *forwarded], peer=("10.0.0.7", 1))
    env = environ_for(req, trusted_proxies=TrustedProxies(["10.0.0.0/8"]))
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == server


def test_resolve_forwarded_rejects_garbage() -> None:
    trusted = TrustedProxies(["10.0.0.1"])
    fwd = resolve_forwarded("10.0.0.1", trusted, "not-an-ip", "gopher", "bad host/x")
    assert (fwd.remote_addr, fwd.scheme, fwd.host) == (None, None, None)
    assert "10.0.0.1" in trusted and "10.0.0.2" not in trusted and "x" not in trusted
    assert not TrustedProxies([])
    assert not TrustedProxies("")
    assert "10.9.9.9" in TrustedProxies("127.0.0.1, 10.0.0.0/8")


def test_no_address_is_trusted_without_networks_nor_a_non_string() -> None:
    # mutmut survivors: __contains__ returning True for an empty set or a non-str.
    assert "127.0.0.1" not in TrustedProxies([])
    assert 167772161 not in TrustedProxies(["10.0.0.0/8"])  # 10.0.0.1 as an int


@pytest.mark.parametrize(
    ("proto", "scheme"), [("http", "http"), ("HTTP", "http"), ("HTTPS", "https"), ("ftp", None)]
)
def test_forwarded_proto_is_case_insensitive_http_or_https(proto: str, scheme: str | None) -> None:
    # mutmut survivors: the accepted set ('http', 'https') edited to another spelling.
    trusted = TrustedProxies(["10.0.0.1"])
    assert resolve_forwarded("10.0.0.1", trusted, "1.2.3.4", proto, None).scheme == scheme


def test_trusted_proxy_network_may_have_host_bits_set() -> None:
    # "10.1.2.3/8" means 10.0.0.0/8 (strict=False), as an operator would mean it.
    trusted = TrustedProxies(["10.1.2.3/8", " 192.168.1.7/24 "])
    assert "10.9.9.9" in trusted and "192.168.1.200" in trusted
    assert "11.0.0.1" not in trusted


@pytest.mark.parametrize("sep", [",", ", ", " ,\t"])
def test_forwarded_proto_and_host_take_the_rightmost_comma_separated_value(sep: str) -> None:
    # Each proxy appends its value, with or without a space after the comma
    # (mutmut survivors: _last splitting on whitespace or on another separator).
    trusted = TrustedProxies(["10.0.0.1"])
    fwd = resolve_forwarded(
        "10.0.0.1", trusted, None, f"https{sep}http", f"evil.example{sep}shop.example:8443"
    )
    assert (fwd.scheme, fwd.host) == ("http", "shop.example:8443")


# --------------------------------------------------------------------------- headers
@pytest.mark.parametrize("status", ["200 OK", "404 Not Found", "599 ", "201 Created here"])
def test_parse_status_valid(status: str) -> None:
    code, reason = parse_status(status)
    assert str(code) == status[:3] and reason == status[4:]


@pytest.mark.parametrize(
    "status", ["200", "OK", "2000 OK", "200OK", "100 Continue", "200 O\r\nK", b"200 OK", 200]
)
def test_parse_status_invalid(status: Any) -> None:
    with pytest.raises(WSGIAppError):
        parse_status(status)


@pytest.mark.parametrize(
    "headers",
    [
        [("X", "a\r\nb: c")],
        [("X", "a\nb")],
        [("X", "nul\x00")],
        [("X", "\u2603")],
        [("Bad Name", "x")],
        [("X:Y", "x")],
        [("X", 1)],
        [(b"X", "1")],
        [("X", "1", "extra")],
        (("X", "1"),),
    ],
)
def test_validate_headers_invalid(headers: Any) -> None:
    with pytest.raises(WSGIAppError):
        validate_headers(headers)


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (b"200 OK", "status must be str, not bytes: b'200 OK'"),
        ("200", "invalid status line '200'; expected e.g. '200 OK'"),
        ("200 \u2603", "status '200 \u2603' is not latin-1 encodable"),
    ],
)
def test_parse_status_errors_say_what_is_wrong(status: Any, message: str) -> None:
    with pytest.raises(WSGIAppError) as info:
        parse_status(status)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ((("X", "1"),), "headers must be a list, not tuple"),
        ([["X", "1"]], "header must be a (name, value) tuple: ['X', '1']"),
        ([("Bad Name", "x")], "invalid header name 'Bad Name'"),
        ([("X", 1)], "header X value must be str, not int"),
        ([("X", "a\r\nb")], "header X value contains control characters: 'a\\r\\nb'"),
        ([("X", "\u2603")], "header X value is not latin-1: '\u2603'"),
    ],
)
def test_validate_headers_errors_name_the_header(headers: Any, message: str) -> None:
    with pytest.raises(WSGIAppError) as info:
        validate_headers(headers)
    assert str(info.value) == message


def test_validate_headers_valid_latin1() -> None:
    headers = [("X-Latin", "caf\xe9"), ("Set-Cookie", "a=1; Path=/"), ("X-Tab", "a\tb")]
    assert validate_headers(headers) is headers


# --------------------------------------------------------------------------- framing
def test_http_date_is_an_imf_fixdate_made_once_per_second(monkeypatch: pytest.MonkeyPatch) -> None:
    # RFC 9110 §5.6.7 IMF-fixdate, in GMT; the string is reused within one second.
    clock = [1_000_000_000.25]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    first = http_date()
    assert first == "Sun, 09 Sep 2001 01:46:40 GMT"
    clock[0] = 1_000_000_000.99
    assert http_date() is first
    clock[0] = 1_000_000_001.0
    assert http_date() == "Sun, 09 Sep 2001 01:46:41 GMT"


def test_plan_list_body_gets_content_length() -> None:
    plan = plan_response("GET", "HTTP/1.1", 200, "OK", [("Content-Type", "x")], known_length=5)
    assert plan.content_length == 5 and ("Content-Length", "5") in plan.headers
    assert plan.body_allowed and not plan.close_connection
    assert any(n == "Date" for n, _ in plan.headers)


def test_plan_head_keeps_length_but_no_body() -> None:
    plan = plan_response("HEAD", "HTTP/1.1", 200, "OK", [], known_length=5)
    assert not plan.body_allowed and plan.content_length == 5


@pytest.mark.parametrize("code", [204, 304])
def test_plan_no_body_statuses(code: int) -> None:
    plan = plan_response("GET", "HTTP/1.1", code, "x", [("Content-Length", "0")], known_length=0)
    assert not plan.body_allowed
    names = [n.lower() for n, _ in plan.headers]
    assert "transfer-encoding" not in names
    if code == 204:
        assert "content-length" not in names


def test_plan_http10_stream_closes() -> None:
    plan = plan_response("GET", "HTTP/1.0", 200, "OK", [])
    assert plan.content_length is None and plan.close_connection


def test_plan_app_chunked_is_not_double_encoded() -> None:
    plan = plan_response(
        "GET", "HTTP/1.1", 200, "OK", [("Transfer-Encoding", "chunked"), ("Content-Length", "3")]
    )
    names = [n.lower() for n, _ in plan.headers]
    assert "transfer-encoding" not in names and "content-length" not in names
    assert plan.content_length is None


def test_plan_headers_after_an_app_transfer_encoding_are_kept() -> None:
    plan = plan_response(
        "GET", "HTTP/1.1", 200, "OK", [("Transfer-Encoding", "chunked"), ("X-After", "1")]
    )
    assert ("X-After", "1") in plan.headers


def test_plan_other_transfer_encoding_is_an_error() -> None:
    with pytest.raises(WSGIAppError):
        plan_response("GET", "HTTP/1.1", 200, "OK", [("Transfer-Encoding", "gzip")])


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "\u0661"])
def test_plan_bad_content_length(value: str) -> None:
    with pytest.raises(WSGIAppError):
        plan_response("GET", "HTTP/1.1", 200, "OK", [("Content-Length", value)])


def test_plan_repeated_content_length_same_value_is_one_header_different_is_an_error() -> None:
    # RFC 9110 §8.6: a repeated identical Content-Length may be folded to one; different
    # values are the app's error (mutmut survivor: the != inverted).
    plan = plan_response("GET", "HTTP/1.1", 200, "OK", [("Content-Length", "5")] * 2)
    assert plan.content_length == 5
    assert [v for n, v in plan.headers if n.lower() == "content-length"] == ["5"]
    with pytest.raises(WSGIAppError, match="conflicting Content-Length"):
        plan_response(
            "GET", "HTTP/1.1", 200, "OK", [("Content-Length", "5"), ("Content-Length", "6")]
        )


def test_plan_hop_by_hop_dropped_with_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="wsgi_bridge"):
        plan = plan_response(
            "GET",
            "HTTP/1.1",
            200,
            "OK",
            [("Keep-Alive", "5"), ("Upgrade", "h2c"), ("Proxy-Foo", "1"), ("Connection", "close")],
        )
    assert [n for n, _ in plan.headers] == ["Date"]
    assert plan.close_connection  # Connection: close is honoured
    assert len([r for r in caplog.records if "hop-by-hop" in r.getMessage()]) == 3


def test_plan_extra_headers_do_not_override_app() -> None:
    plan = plan_response(
        "GET",
        "HTTP/1.1",
        200,
        "OK",
        [("X-Request-ID", "app")],
        extra_headers=[("X-Request-ID", "s")],
    )
    assert [v for n, v in plan.headers if n == "X-Request-ID"] == ["app"]


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ([("Content-Length", "abc")], "invalid Content-Length 'abc'"),
        ([("Content-Length", "5"), ("Content-Length", "6")], "conflicting Content-Length headers"),
        ([("Transfer-Encoding", "gzip")], "unsupported Transfer-Encoding 'gzip' from application"),
    ],
)
def test_plan_errors_name_the_offending_header(headers: Any, message: str) -> None:
    # The message is what the error log shows the application's author.
    with pytest.raises(WSGIAppError) as info:
        plan_response("GET", "HTTP/1.1", 200, "OK", headers)
    assert str(info.value) == message


def test_plan_hop_by_hop_warnings_name_header_and_value(caplog: pytest.LogCaptureFixture) -> None:
    # Only Connection: close closes: another hop-by-hop value saying "close" is dropped
    # with its warning like any other.
    with caplog.at_level(logging.WARNING, logger="wsgi_bridge"):
        plan = plan_response(
            "GET", "HTTP/1.1", 200, "OK", [("Keep-Alive", "5"), ("Proxy-Status", "closed")]
        )
    assert not plan.close_connection
    assert [r.getMessage() for r in caplog.records] == [
        "dropped hop-by-hop response header Keep-Alive: '5'",
        "dropped hop-by-hop response header Proxy-Status: 'closed'",
    ]


def test_plan_304_gets_no_content_length_from_an_empty_body() -> None:
    # A 304's Content-Length would describe the selected representation, not this body.
    plan = plan_response("GET", "HTTP/1.1", 304, "Not Modified", [], known_length=0)
    assert plan.content_length is None and not plan.body_allowed
    assert "content-length" not in [n.lower() for n, _ in plan.headers]


def test_plan_204_drops_the_app_content_length() -> None:
    plan = plan_response("GET", "HTTP/1.1", 204, "No Content", [("Content-Length", "0")])
    assert plan.content_length is None


@pytest.mark.parametrize(
    ("method", "version", "known_length", "close"),
    [
        ("GET", "HTTP/1.0", 5, False),  # length known: keep-alive possible
        ("HEAD", "HTTP/1.0", None, False),  # no body to delimit
        ("GET", "HTTP/1.1", None, False),  # chunked
        ("GET", "HTTP/1.0", None, True),  # delimited by the close
    ],
)
def test_plan_closes_only_for_a_close_delimited_body(
    method: str, version: str, known_length: int | None, close: bool
) -> None:
    plan = plan_response(method, version, 200, "OK", [], known_length=known_length)
    assert plan.close_connection is close
    names = [n.lower() for n, _ in plan.headers]
    assert ("content-length" in names) is (known_length is not None)


def test_plan_keeps_the_app_date_alone() -> None:
    app_date = ("Date", "Sun, 09 Sep 2001 01:46:40 GMT")
    plan = plan_response("GET", "HTTP/1.1", 200, "OK", [app_date])
    assert [(n, v) for n, v in plan.headers if n.lower() == "date"] == [app_date]


# --------------------------------------------------------------------------- request id
def test_ensure_request_id_keeps_valid_incoming_and_caches() -> None:
    req = make_request(headers=[("Host", "h"), ("X-Request-ID", "abc-123")])
    assert ensure_request_id(req) == "abc-123"
    assert getattr(req, REQUEST_ID_ATTR) == "abc-123"


@pytest.mark.parametrize("incoming", [None, "", "x" * 129, "has space", "semi;colon", "é"])
def test_ensure_request_id_generates_for_invalid(incoming: str | None) -> None:
    headers = [("Host", "h")] + ([("X-Request-ID", incoming)] if incoming is not None else [])
    req = make_request(headers=headers)
    rid = ensure_request_id(req)
    assert re.fullmatch(r"[0-9a-f]{12}-[0-9a-f]+", rid), rid
    assert is_valid_request_id(rid)
    assert ensure_request_id(req) == rid
    assert ensure_request_id(make_request(headers=headers)) != rid  # unique per request


def test_forked_child_gets_its_own_request_id_prefix_and_counter() -> None:
    """``serve --processes`` forks: the child's ids get a prefix of their own (12 hex
    digits) and a counter from 1, so ids stay unique across processes; the parent's
    sequence goes on untouched."""
    before = ensure_request_id(make_request(headers=[("Host", "h")]))
    prefix, _, count = before.partition("-")
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its first new id, never return into pytest
        try:
            os.close(read_fd)
            os.write(write_fd, ensure_request_id(make_request(headers=[("Host", "h")])).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    if not select.select([read_fd], [], [], 30)[0]:  # bounded: never hang the suite
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(read_fd)
        pytest.fail("the forked child wrote nothing in 30 s")
    with os.fdopen(read_fd, "rb") as pipe:
        child = pipe.read().decode()
    assert os.waitpid(pid, 0)[1] == 0
    assert re.fullmatch(r"[0-9a-f]{12}-1", child), child
    assert not child.startswith(prefix)
    after = ensure_request_id(make_request(headers=[("Host", "h")]))
    assert after == f"{prefix}-{int(count, 16) + 1:x}"


# --------------------------------------------------------------------------- access log
class _FakeHandler:
    def __init__(self, status: int, **attrs: Any) -> None:
        self.request = make_request("/p?q=1", headers=[("Host", "h"), ("X-Request-ID", "r1")])
        self._status = status
        self._headers = HTTPHeaders({"Content-Length": "12"})
        self.__dict__.update(attrs)

    def get_status(self) -> int:
        return self._status


@pytest.mark.parametrize(
    ("status", "level"),
    [
        (200, logging.INFO),
        (399, logging.INFO),
        (400, logging.WARNING),
        (404, logging.WARNING),
        (499, logging.WARNING),
        (500, logging.ERROR),
        (502, logging.ERROR),
    ],
)
def test_access_log_levels_and_format(
    status: int, level: int, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="tornado.access"):
        access_log_function(_FakeHandler(status))
    (record,) = caplog.records
    assert record.levelno == level
    message = record.getMessage()
    assert message.startswith(f"GET /p?q=1 {status} 12B ")
    assert message.endswith("id=r1 side=native")


def test_access_log_duration_is_milliseconds_since_arrival(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``duration_ms`` is milliseconds from the request's arrival, rounded to 3 decimals
    in the structured field and to 2 in the line."""
    handler: Any = _FakeHandler(200)
    handler.request._start_time = 100.0
    handler.request._finish_time = 100.0123456
    with caplog.at_level(logging.DEBUG, logger="tornado.access"):
        access_log_function(handler)
    (record,) = caplog.records
    assert record.duration_ms == 12.346  # type: ignore[attr-defined]
    assert " 12.35ms " in record.getMessage()


def test_log_access_is_not_aborted_unless_told(caplog: pytest.LogCaptureFixture) -> None:
    """``log_access(request, status, bytes, side)``: no ``aborted`` marker by default."""
    with caplog.at_level(logging.DEBUG, logger="tornado.access"):
        log_access(make_request("/p"), 200, 5, "native")
    (record,) = caplog.records
    assert record.aborted is False  # type: ignore[attr-defined]
    assert record.getMessage().endswith(" side=native")


def test_access_log_wsgi_side_bytes_and_abort_marker(caplog: pytest.LogCaptureFixture) -> None:
    handler = _FakeHandler(200, bytes_sent=7, access_log_side="wsgi", response_aborted=True)
    handler._headers = HTTPHeaders()
    with caplog.at_level(logging.DEBUG, logger="tornado.access"):
        access_log_function(handler)
        access_log_function(_FakeHandler(200, _headers=HTTPHeaders()))
    first, second = (r.getMessage() for r in caplog.records)
    assert " 200 7B " in first and first.endswith("side=wsgi aborted")
    assert " 200 - " in second


def test_access_record_defaults_status_and_route() -> None:
    """What a fast-mount ``log_function`` gets: side ``"wsgi"`` unless given, the status
    sent or 499 when none was, and the app's route pattern only when it is a str."""
    request = make_request("/items/7")

    def finished(status: int | None, environ: dict[str, Any]) -> Any:
        return SimpleNamespace(environ=environ, status_code=status, bytes_sent=3, aborted=False)

    record = AccessRecord(request, finished(None, {}))
    assert (record.access_log_side, record.get_status(), record.route) == ("wsgi", 499, None)
    assert (record.request, record.bytes_sent, record.response_aborted) == (request, 3, False)
    record = AccessRecord(request, finished(201, {ROUTE_ENVIRON_KEY: "/items/<id>"}), "flask")
    assert (record.access_log_side, record.get_status(), record.route) == (
        "flask",
        201,
        "/items/<id>",
    )
    assert AccessRecord(request, finished(200, {ROUTE_ENVIRON_KEY: 7})).route is None


def test_mounts_need_a_bridge_container() -> None:
    """Both mounts refuse anything but a ``wsgi_bridge.WSGIContainer`` (say Tornado's
    own ``tornado.wsgi.WSGIContainer``) with a TypeError saying what they need."""
    with pytest.raises(TypeError) as raised:
        WSGIFallback(object())  # type: ignore[arg-type]
    assert str(raised.value) == "WSGIFallback needs a wsgi_bridge.WSGIContainer"
    request = make_request()
    request.connection = SimpleNamespace(set_close_callback=lambda callback: None)  # type: ignore[assignment]
    with pytest.raises(TypeError) as raised:
        WSGIFallbackHandler(tornado.web.Application(), request, fallback=object())
    assert str(raised.value) == "WSGIFallbackHandler needs a wsgi_bridge.WSGIContainer fallback"


# --------------------------------------------------------------------------- inputs
def test_streaming_input_reads_and_flow_control() -> None:
    async def scenario() -> None:
        stream = StreamingInput(asyncio_ioloop(), high_water=8)
        assert stream.feed(b"line1\nli") is not None  # 8 bytes: sender must pause
        waiter = stream.feed(b"ne2\nrest")
        assert waiter is not None and not waiter.done()
        results: dict[str, Any] = {}

        def reader() -> None:
            results["line"] = stream.readline()
            results["limited"] = stream.readline(2)
            results["read3"] = stream.read(3)
            results["lines"] = stream.readlines()
            results["after"] = stream.read()
            results["none"] = stream.read(None)

        thread = threading.Thread(target=reader)
        thread.start()
        await asyncio.wait_for(waiter, 5)  # released by the reader draining below 8
        stream.feed(b"\nlast")
        stream.feed_eof()
        await asyncio.get_running_loop().run_in_executor(None, thread.join, 5)
        assert results == {
            "line": b"line1\n",
            "limited": b"li",
            "read3": b"ne2",
            "lines": [b"\n", b"rest\n", b"last"],
            "after": b"",
            "none": b"",
        }

    asyncio.run(scenario())


def test_streaming_input_error_and_iteration() -> None:
    async def scenario() -> None:
        stream = StreamingInput(asyncio_ioloop(), high_water=1024)
        stream.feed(b"a\nb\n")
        stream.feed_eof()
        assert list(stream) == [b"a\n", b"b\n"]
        assert stream.read(-1) == b""
        broken = StreamingInput(asyncio_ioloop(), high_water=1024)
        broken.feed_error(ClientDisconnected("gone"))
        with pytest.raises(ClientDisconnected):
            broken.read(1)

    asyncio.run(scenario())


def asyncio_ioloop() -> Any:
    from tornado.ioloop import IOLoop

    return IOLoop.current()


def test_file_wrapper_blocks_and_close() -> None:
    f = io.BytesIO(b"x" * 10)
    wrapper = FileWrapper(f, 4)
    assert [len(b) for b in wrapper] == [4, 4, 2]
    wrapper.close()
    assert f.closed


def test_file_wrapper_close_without_a_close_method_is_a_no_op() -> None:
    # PEP 3333: close() closes the file-like object *if* it has a close() method.
    class Reader:
        def __init__(self) -> None:
            self.data = io.BytesIO(b"abc")

        def read(self, n: int) -> bytes:
            return self.data.read(n)

    wrapper = FileWrapper(Reader(), 2)  # type: ignore[arg-type]
    assert list(wrapper) == [b"ab", b"c"]
    wrapper.close()  # no AttributeError


# --------------------------------------------------------------------------- HTTP/1.1 edges
def test_environ_raw_target_bytes_are_kept_as_latin1() -> None:
    # Tornado hands over the request-target decoded as latin-1.
    req = make_request(b"/caf\xe9-\xe2\x82\xac%41".decode("latin-1"))
    assert environ_for(req)["PATH_INFO"] == "/caf\xe9-\xe2\x82\xacA"


def test_environ_server_software_default_and_given() -> None:
    assert environ_for(make_request())["SERVER_SOFTWARE"] == DEFAULT_SERVER_SOFTWARE
    assert DEFAULT_SERVER_SOFTWARE.startswith("wsgi_bridge TornadoServer/")
    assert environ_for(make_request(), server_software="svc/2")["SERVER_SOFTWARE"] == "svc/2"


def test_environ_server_port_defaults_to_the_schemes_port() -> None:
    """A ``Host`` without a port gives ``SERVER_PORT`` 443 over https, 80 over http."""
    for protocol, port in (("https", "443"), ("http", "80")):
        env = environ_for(make_request(headers=[("Host", "example.test")], protocol=protocol))
        assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("example.test", port)


def test_environ_without_host_and_without_socket_falls_back() -> None:
    env = environ_for(make_request(headers=[("Accept", "*/*")], version="HTTP/1.0"))
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("127.0.0.1", "80")


def request_on(sock: socket.socket) -> HTTPServerRequest:
    """An HTTP/1.0 request without ``Host`` whose connection's stream is ``sock``."""
    hdrs = HTTPHeaders()
    hdrs.add("Accept", "*/*")
    context = SimpleNamespace(address=("10.1.2.3", 54321), remote_ip="10.1.2.3", protocol="http")
    connection: Any = SimpleNamespace(context=context, stream=SimpleNamespace(socket=sock))
    return HTTPServerRequest(
        start_line=RequestStartLine("GET", "/", "HTTP/1.0"), headers=hdrs, connection=connection
    )


def test_environ_without_host_gets_the_local_address_of_the_socket(tmp_path: Path) -> None:
    """No ``Host``: ``SERVER_NAME``/``SERVER_PORT`` are the socket's local end, an IPv6
    address in brackets (URL form); a socket without an IP address (Unix) or one that
    cannot say (closed) gives ``request.host`` and the scheme's port."""
    with socket.socket() as v4:
        v4.bind(("127.0.0.1", 0))
        env = environ_for(request_on(v4))
        assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("127.0.0.1", str(v4.getsockname()[1]))
    with socket.socket(socket.AF_INET6) as v6:
        v6.bind(("::1", 0))
        env = environ_for(request_on(v6))
        assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("[::1]", str(v6.getsockname()[1]))
    with socket.socket(socket.AF_UNIX) as unix:
        unix.bind(str(tmp_path / "s"))
        env = environ_for(request_on(unix))
        assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("127.0.0.1", "80")
    closed = socket.socket()
    closed.close()
    env = environ_for(request_on(closed))
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("127.0.0.1", "80")


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("http://h.example:81/path?q=1", ("h.example:81", "/path?q=1")),
        ("HTTPS://h.example/", ("h.example", "/")),
        ("http://h.example", ("h.example", "/")),
        ("http://h.example?q", ("h.example", "/?q")),
        ("http://user:pw@h.example/x", ("h.example", "/x")),
        ("http://[::1]:8080/x", ("[::1]:8080", "/x")),
        ("/path?q=http://x/", None),
        ("*", None),
        ("h.example:443", None),
        ("ftp://h.example/x", None),
    ],
)
def test_split_absolute_form(target: str, expected: tuple[str, str] | None) -> None:
    assert split_absolute_form(target) == expected


def _in_reader_thread(fn: Any) -> Any:
    """Run ``fn`` on a thread (a worker's reads block); its result, or None after 5 s."""
    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(fn()), daemon=True)
    thread.start()
    thread.join(5)
    return results[0] if results else None


def test_streaming_input_reads_return_what_is_buffered_without_waiting_for_more() -> None:
    # One buffered byte is enough for readline() (a complete line) and readline(1):
    # neither waits for more bytes or for the end of the body.
    async def scenario() -> None:
        stream = StreamingInput(asyncio_ioloop(), high_water=1024)
        try:
            stream.feed(b"\n")
            assert _in_reader_thread(stream.readline) == b"\n"
            stream.feed(b"a")
            assert _in_reader_thread(lambda: stream.readline(1)) == b"a"
        finally:
            stream.feed_eof()  # releases a reader that waited

    asyncio.run(scenario())


def test_streaming_input_readline_of_size_zero_reads_nothing() -> None:
    async def scenario() -> None:
        stream = StreamingInput(asyncio_ioloop(), high_water=1024)
        stream.feed(b"abc\n")
        assert stream.readline(0) == b""  # as io: size 0 reads nothing
        assert stream.buffered == 4
        assert stream.readline() == b"abc\n"

    asyncio.run(scenario())


@pytest.mark.parametrize(("size", "expected"), [(None, b"abcdef\n"), (5, b"abcde")])
def test_streaming_input_readline_of_a_line_arriving_in_pieces(
    size: int | None, expected: bytes
) -> None:
    # A line arriving in pieces is read whole, and readline(n) stops at n bytes over
    # all the pieces.
    async def scenario() -> None:
        stream = StreamingInput(asyncio_ioloop(), high_water=1024)
        results: list[bytes] = []
        thread = threading.Thread(target=lambda: results.append(stream.readline(size)))
        stream.feed(b"ab")
        thread.start()
        # The reader took "ab" and waits for the rest of the line.
        assert await asyncio.to_thread(wait_for, lambda: stream.buffered == 0)
        stream.feed(b"cdef\nrest")
        stream.feed_eof()
        await asyncio.to_thread(thread.join, 5)
        assert results == [expected]

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("hint", "expected"),
    [
        (-1, [b"ab\n", b"cd\n", b"ef\n"]),
        (0, [b"ab\n", b"cd\n", b"ef\n"]),  # 0 or less: no hint, as io
        (None, [b"ab\n", b"cd\n", b"ef\n"]),
        (1, [b"ab\n"]),
        (3, [b"ab\n"]),  # the hint is reached with the first line: stop there
        (4, [b"ab\n", b"cd\n"]),  # lines are read until their total reaches the hint
        (6, [b"ab\n", b"cd\n"]),
    ],
)
def test_streaming_input_readlines_stops_once_the_hint_is_reached(
    hint: int | None, expected: list[bytes]
) -> None:
    async def scenario() -> None:
        stream = StreamingInput(asyncio_ioloop(), high_water=1024)
        stream.feed(b"ab\ncd\nef\n")
        stream.feed_eof()
        assert stream.readlines(hint) == expected

    asyncio.run(scenario())


def test_streaming_input_read1_returns_what_is_buffered_up_to_size() -> None:
    """``read1`` (as ``io.BufferedIOBase.read1``, which ``BufferedInput`` has too):
    what is buffered now, at least one byte unless at the end, at most ``size``."""

    async def scenario() -> None:
        stream = StreamingInput(asyncio_ioloop(), high_water=1024)
        try:
            stream.feed(b"x")  # one byte and no end yet: returned without waiting
            assert _in_reader_thread(stream.read1) == b"x"
            stream.feed(b"hello")
            assert stream.read1(0) == b""
            assert stream.read1(2) == b"he"
            assert stream.read1(-1) == b"llo"
            stream.feed(b"world")
            assert stream.read1() == b"world"
        finally:
            stream.feed_eof()
        assert stream.read1() == b""

    asyncio.run(scenario())


def test_streaming_input_read_sizes_zero_all_and_one_available_byte() -> None:
    async def scenario() -> None:
        sizes: list[int] = []
        stream = StreamingInput(asyncio_ioloop(), high_water=4, on_read=sizes.append)
        stream.feed(b"z")  # one byte, no end yet: read(1) returns it without waiting
        assert _in_reader_thread(lambda: stream.read(1)) == b"z"
        stream.feed(b"abcdefghij")  # more than high_water: read() gathers every piece
        assert _in_reader_thread(lambda: stream.read(0)) == b""  # at once, nothing read
        assert stream.buffered == 10
        stream.feed_eof()
        assert stream.read() == b"abcdefghij"
        assert sizes == [1, 4, 4, 2, 0]  # on_read: the bytes of each read (not of read(0))

    asyncio.run(scenario())


def test_streaming_input_ignores_data_and_errors_after_its_end_and_keeps_the_first_error() -> None:
    async def scenario() -> None:
        ended = StreamingInput(asyncio_ioloop(), high_water=1024)
        ended.feed(b"body")
        ended.feed_eof()
        assert ended.feed(b"late") is None
        assert ended.read() == b"body"
        ended.feed_error(ClientDisconnected("after the end"))
        assert ended.read() == b""  # the body had ended: no error to raise
        broken = StreamingInput(asyncio_ioloop(), high_water=1024)
        broken.feed_error(ClientDisconnected("first"))
        broken.feed_error(ValueError("second"))
        assert broken.feed(b"late") is None
        with pytest.raises(ClientDisconnected, match="first"):
            broken.read(1)

    asyncio.run(scenario())


@pytest.mark.parametrize("high_water", [0, 1])
def test_streaming_input_high_water_is_at_least_one_byte(high_water: int) -> None:
    async def scenario() -> None:
        stream = StreamingInput(asyncio_ioloop(), high_water=high_water)
        assert stream.feed(b"a") is not None  # one byte fills it: the sender pauses

    asyncio.run(scenario())


def test_streaming_input_resumes_the_sender_only_below_high_water() -> None:
    async def scenario() -> None:
        stream = StreamingInput(asyncio_ioloop(), high_water=4)
        waiter = stream.feed(b"abcdef")
        assert waiter is not None
        assert stream.read(2) == b"ab"  # 4 left: still full
        for _ in range(3):
            await asyncio.sleep(0)  # what read() scheduled on the loop has run
        assert not waiter.done()
        assert stream.read(1) == b"c"  # 3 left: below high_water
        await asyncio.wait_for(waiter, 5)

    asyncio.run(scenario())
