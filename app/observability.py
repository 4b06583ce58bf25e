"""The Flask side's share of observability: the request id and the route pattern.

:func:`init_app` adds two hooks:

* ``before_request``: ``g.request_id`` is the id the server gave the request
  (``environ["wsgi_bridge.request_id"]``; under another WSGI server a valid
  ``X-Request-ID`` or a new one), bound with ``structlog.contextvars`` so every
  log line the view writes carries it, on the worker thread that runs it; and
  ``environ["wsgi_bridge.route"]`` is the matched rule's pattern
  (``request.url_rule.rule``, e.g. ``/api/items/<int:item_id>``) or
  ``"<unmatched>"``, which the bridge's access record passes to the metrics
  (never the raw path: bounded cardinality);
* ``teardown_request``: the binding is removed, so the thread's next request
  (under a server that reuses contexts) starts clean.
"""

from __future__ import annotations

import uuid

import structlog
from flask import Flask, g, request

from wsgi_bridge.mount import ROUTE_ENVIRON_KEY
from wsgi_bridge.request_id import REQUEST_ID_ENVIRON_KEY, is_valid_request_id

#: Route label of a request no Flask rule matched (404, and 405 on a known path).
UNMATCHED_ROUTE = "<unmatched>"


def _request_id() -> str:
    environ = request.environ
    given = environ.get(REQUEST_ID_ENVIRON_KEY)
    if isinstance(given, str):
        return given
    incoming = request.headers.get("X-Request-ID")
    return incoming if is_valid_request_id(incoming) else uuid.uuid4().hex


def init_app(app: Flask) -> None:
    """Register the request-id and route hooks on ``app`` (see the module docstring)."""

    @app.before_request
    def bind_request_id() -> None:
        g.request_id = request_id = _request_id()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        rule = request.url_rule
        request.environ[ROUTE_ENVIRON_KEY] = rule.rule if rule is not None else UNMATCHED_ROUTE

    @app.teardown_request
    def unbind_request_id(_: BaseException | None) -> None:
        structlog.contextvars.unbind_contextvars("request_id")
