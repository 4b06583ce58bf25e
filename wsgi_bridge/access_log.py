"""One access-log line per request, the same for native handlers and the bridge.

Format (logger ``tornado.access``; level INFO below 400, WARNING below 500, ERROR
otherwise, like ``tornado.web.Application.log_request``)::

    GET /legacy/items?page=2 200 5120B 12.34ms id=4f0c... side=wsgi
    GET /download 200 65536B 1003.10ms id=77aa... side=wsgi aborted

``aborted`` marks a response cut short (client went away, or the application failed
after the headers were sent); the status is the one that was sent, or ``499`` when
no status line left the server (nginx's "client closed request").

The same facts also travel as structured fields, in the record's ``extra``
(:data:`ACCESS_FIELDS`): a structured formatter (structlog's ``ProcessorFormatter``
with ``ExtraAdder``, python-json-logger ...) renders them as keys, while plain
``logging`` shows the line above.  The bridge stays on the standard library, so it
works with any logging set-up.
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

#: The ``extra`` keys of an access record: ``request_id`` (str), ``method`` (str),
#: ``path`` (the request target as sent: path and query), ``status`` (int),
#: ``bytes`` (body bytes, int, or None when unknown), ``duration_ms`` (float,
#: milliseconds since the request line arrived), ``side`` (str), ``client``
#: (``request.remote_ip``: the peer, or the client a trusted proxy named),
#: ``user_agent`` (str or None) and ``aborted`` (bool).
ACCESS_FIELDS = (
    "request_id",
    "method",
    "path",
    "status",
    "bytes",
    "duration_ms",
    "side",
    "client",
    "user_agent",
    "aborted",
)


def _as_bytes(value: int | str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        return None


def log_access(
    request: HTTPServerRequest,
    status: int,
    bytes_sent: int | str | None,
    side: str,
    aborted: bool = False,
) -> None:
    """Write one access line for ``request``, with its :data:`ACCESS_FIELDS` as ``extra``.

    :param request: the Tornado request (method, uri, start time, request id,
        ``remote_ip``, ``User-Agent``).
    :param status: HTTP status code sent.
    :param bytes_sent: body bytes written (int), a header string, or None for ``-``.
    :param side: who served it, e.g. ``"native"``, ``"wsgi"`` (the bridge's default)
        or the name the mount was given (``WSGIFallback(side="flask")``).
    :param aborted: append the ``aborted`` marker.
    """
    if status < 400:
        level = logging.INFO
    elif status < 500:
        level = logging.WARNING
    else:
        level = logging.ERROR
    if not access_log.isEnabledFor(level):
        return
    size = _as_bytes(bytes_sent)
    duration_ms = 1000.0 * request.request_time()
    request_id = ensure_request_id(request)
    fields = {
        "request_id": request_id,
        "method": request.method,
        "path": request.uri,
        "status": status,
        "bytes": size,
        "duration_ms": round(duration_ms, 3),
        "side": side,
        "client": request.remote_ip,
        "user_agent": request.headers.get("User-Agent"),
        "aborted": aborted,
    }
    access_log.log(
        level,
        "%s %s %d %s %.2fms id=%s side=%s%s",
        request.method,
        request.uri,
        status,
        "-" if size is None else f"{size}B",
        duration_ms,
        request_id,
        side,
        " aborted" if aborted else "",
        extra=fields,
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
