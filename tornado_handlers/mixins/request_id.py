"""The request id on every native response and on every log line written for it."""

from __future__ import annotations

import structlog
import tornado.web

from wsgi_bridge import ensure_request_id


class RequestIdMixin(tornado.web.RequestHandler):
    """``X-Request-ID`` on the response; ``request_id`` on the request's log lines.

    The id is the client's valid ``X-Request-ID`` or a new one
    (:func:`wsgi_bridge.ensure_request_id`, the same the access line shows).
    ``prepare`` binds it with ``structlog.contextvars``: Tornado wraps each handler's
    ``_execute`` coroutine in a future with its own copy of the context, so the
    binding covers everything this request's coroutine logs, and blocking work sent
    to the executor with ``run_in_executor`` (which runs it in a copy of the
    context); ``on_finish`` removes it.
    """

    def set_default_headers(self) -> None:
        """Every response carries this request's ``X-Request-ID`` (then the other mixins')."""
        super().set_default_headers()
        self.set_header("X-Request-ID", ensure_request_id(self.request))

    def prepare(self) -> None:
        """Bind ``request_id`` for this request's log lines, then the other mixins' ``prepare``."""
        structlog.contextvars.bind_contextvars(request_id=ensure_request_id(self.request))
        super().prepare()

    def on_finish(self) -> None:
        """Unbind ``request_id`` once the response is complete."""
        super().on_finish()
        structlog.contextvars.unbind_contextvars("request_id")
