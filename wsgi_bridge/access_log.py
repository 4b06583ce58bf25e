"""One access-log line per request, the same for native handlers and the bridge.

Format (logger ``tornado.access``; level INFO below 400, WARNING below 500, ERROR
otherwise, like ``tornado.web.Application.log_request``)::

    GET /legacy/items?page=2 200 5120B 12.34ms id=4f0c... side=wsgi
    GET /download 200 65536B 1003.10ms id=77aa... side=wsgi aborted

``aborted`` marks a response cut short (client went away, or the application failed
after the headers were sent); the status is the one that was sent, or ``499`` when
no status line left the server (nginx's "client closed request").
"""

from __future__ import annotations

import logging
from typing import Any

from tornado.httputil import HTTPServerRequest
from tornado.web import RequestHandler

from .compat import response_headers
from .request_id import ensure_request_id

access_log = logging.getLogger("tornado.access")

#: Status logged when the client went away before any status line was sent.
STATUS_CLIENT_CLOSED = 499


def log_access(
    request: HTTPServerRequest,
    status: int,
    bytes_sent: int | str | None,
    side: str,
    aborted: bool = False,
) -> None:
    """Write one access line for ``request``.

    :param request: the Tornado request (method, uri, start time, request id).
    :param status: HTTP status code sent.
    :param bytes_sent: body bytes written (int), a header string, or None for ``-``.
    :param side: ``"native"`` or ``"wsgi"``.
    :param aborted: append the ``aborted`` marker.
    """
    if status < 400:
        method = access_log.info
    elif status < 500:
        method = access_log.warning
    else:
        method = access_log.error
    size = "-" if bytes_sent is None or bytes_sent == "" else f"{bytes_sent}B"
    method(
        "%s %s %d %s %.2fms id=%s side=%s%s",
        request.method,
        request.uri,
        status,
        size,
        1000.0 * request.request_time(),
        ensure_request_id(request),
        side,
        " aborted" if aborted else "",
    )


def access_log_function(handler: RequestHandler) -> None:
    """``tornado.web.Application(log_function=access_log_function)``.

    :param handler: the finished ``RequestHandler``.  Reads ``handler.get_status()``;
        bytes from ``handler.bytes_sent`` when present, else the response
        ``Content-Length`` header, else ``-``; the side from
        ``handler.access_log_side`` (default ``"native"``); the marker from
        ``handler.response_aborted`` (default False).
    """
    bytes_sent: Any = getattr(handler, "bytes_sent", None)
    if bytes_sent is None:
        bytes_sent = response_headers(handler).get("Content-Length")
    log_access(
        handler.request,
        handler.get_status(),
        bytes_sent,
        getattr(handler, "access_log_side", "native"),
        bool(getattr(handler, "response_aborted", False)),
    )
