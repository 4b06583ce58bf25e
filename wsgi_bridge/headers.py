"""Validation of what a WSGI application hands to ``start_response`` (no I/O).

PEP 3333 "The start_response() Callable": ``status`` is a native string
``"NNN Reason"``; ``response_headers`` is a list of ``(name, value)`` tuples of
native strings that can be encoded as latin-1.  RFC 9110 §5.1 / §5.5 say names are
tokens and values hold no CR, LF or NUL; a header that broke these rules would let the
application split the response (header injection), so it is refused here, in the
application's own thread, where the traceback is useful.
"""

from __future__ import annotations

import re

from .errors import WSGIAppError
from .types import HeaderList

_STATUS_RE = re.compile(r"([2-5][0-9][0-9]) ([^\x00-\x08\x0a-\x1f\x7f]*)\Z")
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_BAD_VALUE_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

#: Hop-by-hop headers (RFC 9110 §7.6.1, wsgiref.util._hoppish) that an application
#: must not send (PEP 3333 "Other HTTP Features").  ``transfer-encoding`` is handled
#: apart, in :mod:`wsgi_bridge.framing`, because ``chunked`` has a safe meaning.
HOP_BY_HOP: frozenset[str] = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "upgrade",
    }
)


def parse_status(status: object) -> tuple[int, str]:
    """Split a WSGI status line into ``(code, reason)``.

    :param status: what the application passed, e.g. ``"404 Not Found"``; must be a
        ``str`` of three digits (200-599), one space and a reason phrase (may be empty).
        1xx codes are refused: PEP 3333 leaves ``100 Continue`` to the server.
    :returns: ``(404, "Not Found")``.
    :raises WSGIAppError: on any other shape (PEP 3333 "The start_response() Callable").
    """
    if not isinstance(status, str):
        raise WSGIAppError(f"status must be str, not {type(status).__name__}: {status!r}")
    match = _STATUS_RE.match(status)
    if match is None:
        raise WSGIAppError(f"invalid status line {status!r}; expected e.g. '200 OK'")
    try:
        match.group(2).encode("latin-1")
    except UnicodeEncodeError as exc:
        raise WSGIAppError(f"status {status!r} is not latin-1 encodable") from exc
    return int(match.group(1)), match.group(2)


def validate_headers(headers: object) -> HeaderList:
    """Check the response headers list given to ``start_response``.

    :param headers: must be a ``list`` of 2-tuples ``(name: str, value: str)``; names
        are RFC 9110 tokens; values are latin-1 encodable and contain no control
        characters other than HTAB (so no CR, LF or NUL).
    :returns: the same list, as a :data:`HeaderList` (not copied).
    :raises WSGIAppError: naming the first offending header.
    """
    if type(headers) is not list:
        raise WSGIAppError(f"headers must be a list, not {type(headers).__name__}")
    for item in headers:
        if type(item) is not tuple or len(item) != 2:
            raise WSGIAppError(f"header must be a (name, value) tuple: {item!r}")
        name, value = item
        if type(name) is not str or _TOKEN_RE.match(name) is None:
            raise WSGIAppError(f"invalid header name {name!r}")
        if type(value) is not str:
            raise WSGIAppError(f"header {name} value must be str, not {type(value).__name__}")
        if _BAD_VALUE_RE.search(value) is not None:
            raise WSGIAppError(f"header {name} value contains control characters: {value!r}")
        try:
            value.encode("latin-1")
        except UnicodeEncodeError as exc:
            raise WSGIAppError(f"header {name} value is not latin-1: {value!r}") from exc
    return headers
