"""Deciding how a WSGI response is framed on the wire (no I/O).

RFC 9112 §6: a response body is delimited by ``Content-Length``, by chunked
transfer coding (HTTP/1.1 only) or by closing the connection (HTTP/1.0 without a
length).  HEAD responses, 1xx, 204 and 304 never carry a body (RFC 9110 §6.4.1,
RFC 9112 §6.3).  Tornado's ``HTTP1Connection.write_headers`` adds
``Transfer-Encoding: chunked`` itself when it sees no ``Content-Length`` on an
HTTP/1.1 response with a body; this module makes sure it never sees a contradicting
or hop-by-hop header from the application.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from email.utils import formatdate

from .errors import WSGIAppError
from .headers import HOP_BY_HOP
from .types import HeaderList

log = logging.getLogger("wsgi_bridge")

_date_cache: tuple[int, str] = (0, "")


def http_date() -> str:
    """Return the current time as an IMF-fixdate (RFC 9110 §5.6.7), cached per second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


@dataclass(slots=True)
class ResponsePlan:
    """How one response goes out.

    :ivar code: status code, e.g. ``200``.
    :ivar reason: reason phrase, e.g. ``"OK"``.
    :ivar headers: headers to send (hop-by-hop ones removed, ``Content-Length`` added
        when known), as ``(name, value)`` native strings.
    :ivar body_allowed: False for HEAD, 204 and 304: no body byte may be written.
    :ivar content_length: the declared body length in bytes, or None (chunked on
        HTTP/1.1, close-delimited on HTTP/1.0).
    :ivar close_connection: close the connection after the response (HTTP/1.0 body
        without a length, or the application asked for ``Connection: close``).
    """

    code: int
    reason: str
    headers: HeaderList
    body_allowed: bool
    content_length: int | None
    close_connection: bool


def plan_response(
    method: str,
    request_version: str,
    code: int,
    reason: str,
    headers: HeaderList,
    known_length: int | None = None,
    extra_headers: HeaderList | None = None,
) -> ResponsePlan:
    """Decide the framing of a response and clean its headers.

    :param method: request method, e.g. ``"HEAD"``.
    :param request_version: ``"HTTP/1.1"`` or ``"HTTP/1.0"``.
    :param code: status code already validated by :func:`~wsgi_bridge.headers.parse_status`.
    :param reason: reason phrase.
    :param headers: validated application headers (not modified; a new list is built).
    :param known_length: body length in bytes when the whole body is known (list or
        tuple body); used to add ``Content-Length`` when the application gave none.
    :param extra_headers: server headers (e.g. ``X-Request-ID``) added unless the
        application set the same name.
    :returns: a :class:`ResponsePlan`.
    :raises WSGIAppError: for a non-numeric or repeated-and-different ``Content-Length``
        or a ``Transfer-Encoding`` other than ``chunked``.

    Policy for application headers that only the server may set (PEP 3333 "Other HTTP
    Features" forbids them; wsgiref asserts): ``Connection``, ``Keep-Alive``,
    ``Proxy-*``, ``TE``, ``Trailer`` and ``Upgrade`` are dropped with a warning on the
    ``wsgi_bridge`` logger, but ``Connection: close`` is honoured by closing the
    connection after the response.  ``Transfer-Encoding: chunked`` is dropped and the
    server frames the body itself (chunked on HTTP/1.1, close-delimited on HTTP/1.0),
    so it is never encoded twice; it also voids an application ``Content-Length``
    (RFC 9112 §6.1).
    """
    out: HeaderList = []
    content_length: int | None = None
    close_connection = False
    te_chunked = False
    seen: set[str] = set()
    for name, value in headers:
        lname = name.lower()
        if lname == "content-length":
            stripped = value.strip()
            if not stripped.isdigit() or not stripped.isascii():
                raise WSGIAppError(f"invalid Content-Length {value!r}")
            length = int(stripped)
            if content_length is not None and content_length != length:
                raise WSGIAppError("conflicting Content-Length headers")
            if content_length is None:
                content_length = length
                out.append((name, stripped))
            seen.add(lname)
            continue
        if lname == "transfer-encoding":
            if value.strip().lower() != "chunked":
                raise WSGIAppError(f"unsupported Transfer-Encoding {value!r} from application")
            te_chunked = True
            continue
        if lname in HOP_BY_HOP or lname.startswith("proxy-"):
            if lname == "connection" and "close" in value.lower():
                close_connection = True
            else:
                log.warning("dropped hop-by-hop response header %s: %r", name, value)
            continue
        seen.add(lname)
        out.append((name, value))

    if te_chunked and content_length is not None:
        out = [(n, v) for n, v in out if n.lower() != "content-length"]
        content_length = None

    no_body_status = code < 200 or code in (204, 304)
    body_allowed = method != "HEAD" and not no_body_status
    if code < 200 or code == 204:
        # RFC 9110 §8.6: no Content-Length on 1xx/204.
        if content_length is not None:
            out = [(n, v) for n, v in out if n.lower() != "content-length"]
            content_length = None
    elif content_length is None and known_length is not None and code != 304 and not te_chunked:
        content_length = known_length
        out.append(("Content-Length", str(known_length)))

    if body_allowed and content_length is None and request_version != "HTTP/1.1":
        close_connection = True

    if "date" not in seen:
        out.append(("Date", http_date()))
    if extra_headers:
        for name, value in extra_headers:
            if name.lower() not in seen:
                out.append((name, value))
    return ResponsePlan(code, reason, out, body_allowed, content_length, close_connection)


def simple_response_headers(body: bytes, extra: HeaderList | None = None) -> HeaderList:
    """Headers for a small ``text/plain`` response the bridge writes itself (500, 503...).

    :param body: the exact body bytes.
    :param extra: more headers, e.g. ``[("Retry-After", "1")]``.
    """
    headers: HeaderList = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
        ("Date", http_date()),
    ]
    if extra:
        headers.extend(extra)
    return headers
