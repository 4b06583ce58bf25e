"""One request id shared by the native handlers, the bridge and the access log."""

from __future__ import annotations

import contextvars
import itertools
import os
import re
from typing import TypeGuard

from tornado.httputil import HTTPServerRequest

#: Attribute cached on the Tornado request object (the only one the bridge sets).
REQUEST_ID_ATTR = "wsgi_bridge_request_id"
#: WSGI environ key holding the request id (PEP 3333 reserves dotted names for the
#: server; ``HTTP_X_REQUEST_ID`` carries the same id, replacing an invalid client one).
REQUEST_ID_ENVIRON_KEY = "wsgi_bridge.request_id"
#: The id of the request a worker thread is serving, set by the bridge around the WSGI
#: call (in the job's own copy of the context, so it never leaks into the next job);
#: None elsewhere.  Logging set-ups read it to tag every line written for a request.
current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "wsgi_bridge_request_id", default=None
)
#: Longest incoming ``X-Request-ID`` accepted, in characters.
MAX_REQUEST_ID_LENGTH = 128
_VALID_RE = re.compile(rf"[A-Za-z0-9._:\-]{{1,{MAX_REQUEST_ID_LENGTH}}}\Z")

# New ids are a random per-process prefix plus a counter: unique across
# processes and restarts like a uuid4, without a getrandom() system call per
# request (profiling showed uuid4 at ~13% of the IOLoop thread's time).
# ``itertools.count`` is atomic under the GIL.
_PREFIX = os.urandom(6).hex()
_counter = itertools.count(1)


def _new_prefix() -> None:
    """A forked child (``serve --processes``) gets a prefix of its own, not its parent's."""
    global _PREFIX, _counter
    _PREFIX = os.urandom(6).hex()
    _counter = itertools.count(1)


os.register_at_fork(after_in_child=_new_prefix)


def is_valid_request_id(value: str | None) -> TypeGuard[str]:
    """True for 1-128 characters of ``A-Z a-z 0-9 . _ : -`` (safe in logs and headers)."""
    return value is not None and _VALID_RE.match(value) is not None


def ensure_request_id(request: HTTPServerRequest) -> str:
    """Return the request's id, creating and caching it on first call.

    :param request: the Tornado request; the id is cached on it as the attribute
        ``wsgi_bridge_request_id`` so every later caller (native base handler,
        bridge, access log) gets the same string.
    :returns: the incoming ``X-Request-ID`` header when it is valid (see
        :func:`is_valid_request_id`), else a new id: 12 random hex digits fixed per
        process, ``-``, and a per-process counter in hex (``"3f9a1c2e07b4-1a2"``).
    """
    cached: str | None = getattr(request, REQUEST_ID_ATTR, None)
    if cached is not None:
        return cached
    incoming = request.headers.get("X-Request-ID")
    rid = incoming if is_valid_request_id(incoming) else f"{_PREFIX}-{next(_counter):x}"
    setattr(request, REQUEST_ID_ATTR, rid)
    return rid
