"""Parity testing: does a native handler answer like the Flask view it ports?

Send the same request to both and compare what a client can observe::

    from tests.support.parity import assert_parity

    def test_item_detail(live_server):
        server = live_server()
        assert_parity(server, "GET", "/api/items/1", ignore=["created_at"])

* **Flask side** -- WebTest's ``TestApp`` around the hybrid's own Flask app
  (``server.hybrid.flask_app``), i.e. straight into the WSGI app: the native
  rule that shadows the route in the hybrid is out of the way, and the Flask
  view answers as it did before the port.
* **Native side** -- ``httpx`` over a real socket to the running hybrid server
  (the ``live_server`` fixture), where the native rule wins.

Both sides share one database, so they read the same rows.

A port that moved to a new URL (Flask's ``/api/items/<id>/notes``, native
``/api/v2/items/<id>/notes``) is compared with ``native_path=``: the Flask
view gets ``path``, the native handler ``native_path``.

Compared: the status code; the headers named in ``headers`` (by default
:data:`COMPARED_HEADERS`; absent on both sides is equal); and the body -- as
data when both are JSON (so key order and whitespace do not matter), after
replacing the fields named in ``ignore`` with ``"<ignored>"``; else as bytes.
``same_bytes=True`` also requires the JSON bodies to be byte for byte equal
(``BaseHandler.write_json`` serializes as Flask does). ``Allow`` is compared
as a set: its order carries no meaning (RFC 9110 section 10.2.1) and Flask's
automatic ``OPTIONS`` answer lists it in set order. A mismatch raises
:class:`AssertionError` whose message lists each difference and a unified
diff of the bodies (``-`` Flask, ``+`` native).

The rules (:class:`Reply`, :data:`COMPARED_HEADERS`, :data:`IGNORED`,
:func:`differences`) live in :mod:`server.cutover.compare`, which the shadow
comparison of live traffic uses too: the tests and production compare alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import tornado.web
import webtest
from flask import Flask
from tornado.routing import PathMatches

from server.cutover.compare import COMPARED_HEADERS, IGNORED, Reply, differences
from tests.support.server import LiveServer
from wsgi_bridge import WSGIFallbackHandler

__all__ = [
    "COMPARED_HEADERS",
    "IGNORED",
    "ParityRequest",
    "Reply",
    "assert_parity",
    "assert_same",
    "differences",
    "flask_reply",
    "native_handler_for",
    "native_reply",
]


@dataclass(frozen=True)
class ParityRequest:
    """What to send to both sides.

    :ivar method: ``"GET"``, ``"HEAD"``, ``"POST"`` ...
    :ivar path: the full path as the browser sends it (``FLASK_MOUNT`` included)
        plus an optional query string.
    :ivar headers: extra request headers (``Cookie``, ``Accept`` ...).
    :ivar body: the request body.
    """

    method: str
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


def flask_reply(flask_app: Flask, request: ParityRequest, mount: str = "") -> Reply:
    """Send ``request`` straight to the Flask app (WebTest, no socket, no native rules).

    :param flask_app: the Flask app, e.g. ``server.hybrid.flask_app``.
    :param request: what to send; its ``path`` starts with ``mount``.
    :param mount: ``FLASK_MOUNT``: moved from the path to ``SCRIPT_NAME`` as the
        WSGI bridge does.
    """
    path = request.path
    environ: dict[str, str] = {}
    if mount:
        if not path.startswith(mount + "/"):
            raise ValueError(f"{path!r} is not under the Flask mount {mount!r}")
        path = path[len(mount) :]
        environ["SCRIPT_NAME"] = mount
    app = webtest.TestApp(flask_app, extra_environ=environ)
    response = app.request(
        path,
        method=request.method,
        headers=dict(request.headers),
        body=request.body,
        expect_errors=True,
    )
    headers: dict[str, str] = {}
    for name, value in response.headerlist:
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return Reply("flask", response.status_int, headers, response.body)


def native_reply(base_url: str, request: ParityRequest, path: str | None = None) -> Reply:
    """Send ``request`` to the running hybrid server over a socket (``httpx``).

    :param base_url: e.g. ``server.url`` (``http://127.0.0.1:<port>``).
    :param path: the path to send to instead of ``request.path`` (a port that
        moved to a new URL); ``None`` keeps ``request.path``.
    """
    response = httpx.request(
        request.method,
        base_url + (request.path if path is None else path),
        headers=dict(request.headers),
        content=request.body or None,
        follow_redirects=False,
        timeout=10,
    )
    headers = {
        name.lower(): ", ".join(response.headers.get_list(name)) for name in response.headers
    }
    return Reply("native", response.status_code, headers, response.content)


def native_handler_for(application: tornado.web.Application, path: str) -> type | None:
    """Return the native handler class Tornado picks for ``path``, or ``None`` for Flask.

    :param application: the hybrid's Tornado application.
    :param path: a path, with or without a query string.
    """
    path = path.split("?", 1)[0]
    for rule in application.wildcard_router.rules:
        if isinstance(rule.matcher, PathMatches) and rule.matcher.regex.match(path):
            target = rule.target
            if isinstance(target, type) and issubclass(target, WSGIFallbackHandler):
                return None
            return target if isinstance(target, type) else None
    return None


def assert_same(
    request: ParityRequest,
    flask: Reply,
    native: Reply,
    *,
    headers: Iterable[str] = COMPARED_HEADERS,
    ignore: Iterable[str] = (),
    same_bytes: bool = False,
    native_path: str | None = None,
) -> None:
    """Raise :class:`AssertionError` listing :func:`differences`, if there are any.

    :param native_path: the native side's path when it differs from
        ``request.path`` (named in the message).
    """
    found = differences(flask, native, headers=headers, ignore=ignore, same_bytes=same_bytes)
    if found:
        where = request.path if native_path is None else f"{request.path} (native {native_path})"
        title = f"{request.method} {where}: the native handler differs from the Flask view"
        raise AssertionError("\n".join([title, *(f"  {line}" for line in found)]))


def assert_parity(
    server: LiveServer,
    method: str,
    path: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    json_body: Any = None,
    compare_headers: Iterable[str] = COMPARED_HEADERS,
    ignore: Iterable[str] = (),
    same_bytes: bool = False,
    native_path: str | None = None,
) -> tuple[Reply, Reply]:
    """Send one request to the Flask view and to the native handler; require the same answer.

    :param server: the running hybrid (``live_server()``); its Flask app and
        mount (``settings.flask_mount``) are used for the Flask side.
    :param method: the HTTP method.
    :param path: the path (with the Flask mount, if any) and query string.
    :param headers: request headers sent to both.
    :param body: raw request body; or
    :param json_body: a value sent as JSON (sets ``Content-Type: application/json``).
    :param compare_headers: response headers to compare.
    :param ignore: JSON body fields to leave out (see :func:`differences`).
    :param same_bytes: require byte-equal JSON bodies too (see :func:`differences`).
    :param native_path: send the native request here instead of ``path``: for a
        port that moved to a new URL (``/api/v2/...``). Default ``path``.
    :returns: ``(flask_reply, native_reply)`` for further checks.
    :raises AssertionError: with a readable diff when they differ; also when no
        native rule serves the native path (Flask would be compared with itself).
    """
    target = path if native_path is None else native_path
    if native_handler_for(server.hybrid.application, target) is None:
        raise AssertionError(f"no native rule serves {target}: nothing to compare Flask with")
    request_headers = dict(headers or {})
    if json_body is not None:
        body = json.dumps(json_body).encode()
        request_headers.setdefault("Content-Type", "application/json")
    request = ParityRequest(method, path, request_headers, body)
    flask = flask_reply(server.hybrid.flask_app, request, server.hybrid.settings.flask_mount)
    native = native_reply(server.url, request, native_path)
    assert_same(
        request,
        flask,
        native,
        headers=compare_headers,
        ignore=ignore,
        same_bytes=same_bytes,
        native_path=native_path,
    )
    return flask, native
