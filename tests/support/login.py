"""Logging in as a browser does, over real sockets, and asking a WebSocket who we are."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any, Protocol

import httpx
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from config.settings import SESSION_COOKIE_NAME
from tests.support.server import close_websocket

EMAIL = "ada@example.com"
"""The account :func:`register_and_log_in` creates."""

PASSWORD = "correct horse battery"
"""Its password."""


def csrf_token(page: str) -> str:
    """The Flask-WTF token of the (first) form in ``page``."""
    match = re.search(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"', page)
    assert match, "no CSRF token in the page"
    return match.group(1)


def meta_csrf_token(page: str) -> str:
    """The CSRF token of ``<meta name="csrf-token">`` in ``page`` (what scripts send)."""
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', page)
    assert match, "no csrf-token meta tag in the page"
    return match.group(1)


class Site(Protocol):
    """Anything served at a base URL: a :class:`LiveServer`, nginx in front of one ..."""

    @property
    def url(self) -> str:
        """The base URL, without a trailing slash."""
        ...


def browser(server: Site) -> httpx.Client:
    """A client that keeps cookies, like a browser."""
    return httpx.Client(base_url=server.url, timeout=10)


def register_and_log_in(server: Site) -> httpx.Client:
    """Register :data:`EMAIL` through Flask's form (which logs in), log out, log in again.

    :returns: the browser, holding the login's ``session`` cookie.
    """
    client = browser(server)
    page = client.get("/auth/register").text
    registered = client.post(
        "/auth/register",
        data={
            "csrf_token": csrf_token(page),
            "email": EMAIL,
            "password": PASSWORD,
            "confirm": PASSWORD,
        },
    )
    assert registered.status_code == 302, registered.text
    client.cookies.clear()
    page = client.get("/auth/login").text
    response = client.post(
        "/auth/login",
        data={"csrf_token": csrf_token(page), "email": EMAIL, "password": PASSWORD},
    )
    assert response.status_code == 302, response.text
    assert response.headers["location"] == "/"
    assert SESSION_COOKIE_NAME in client.cookies
    return client


def tamper(value: str) -> str:
    """``value`` with the first character of its signature changed.

    Not the last character: in base64 it may carry only padding bits, and
    changing it can leave the signature's bytes -- and its validity -- intact.
    """
    rest, signature = value.rsplit(".", 1)
    return f"{rest}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"


def websocket_hello(url: str, cookie: str | None) -> dict[str, Any]:
    """Open the WebSocket at ``url`` with ``cookie`` as the ``Cookie`` header; return its first
    message, decoded from JSON. The connection is closed fully before this returns.

    :param url: e.g. ``f"{server.ws_url}/_test/ws"``.
    :param cookie: e.g. ``f"{SESSION_COOKIE_NAME}=..."``; ``None`` sends no cookie.
    """

    async def run() -> dict[str, Any]:
        headers = {"Cookie": cookie} if cookie else {}
        connection = await websocket_connect(HTTPRequest(url, headers=headers))
        try:
            message = await asyncio.wait_for(connection.read_message(), 10)
            assert message is not None
            hello: dict[str, Any] = json.loads(message)
            return hello
        finally:
            await close_websocket(connection)

    return asyncio.run(run())
