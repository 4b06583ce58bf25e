"""`WSGIFallbackHandler`: the streaming, fully featured way to mount the container."""

from __future__ import annotations

from typing import Any

from tornado import web
from tornado.concurrent import Future

from .compat import (
    body_future,
    mark_handler_finished,
    reset_handler_response,
    response_headers,
)
from .container import WSGIContainer
from .exchange import Exchange


class _AnyMethod(tuple[str, ...]):
    """``SUPPORTED_METHODS`` that contains every method: the WSGI app decides (405...)."""

    def __contains__(self, item: object) -> bool:
        return isinstance(item, str)


@web.stream_request_body
class WSGIFallbackHandler(web.FallbackHandler):
    """Route the request to a :class:`~wsgi_bridge.container.WSGIContainer`, streaming.

    Use as the last rule: ``(r".*", WSGIFallbackHandler, {"fallback": container})``.

    Differences from ``tornado.web.FallbackHandler``:

    * ``@stream_request_body``: the application may start while the upload arrives;
      small bodies (up to ``request_buffer_size``) are read before dispatch.
    * every HTTP method is passed to the application (no Tornado 405).
    * the access log line (``Application.log_request``, so ``log_function``) is
      written *after* the response was fully handed to the connection, with the real
      status; ``bytes_sent``, ``response_aborted`` and ``access_log_side = "wsgi"`` are
      set for :func:`~wsgi_bridge.access_log.access_log_function`.
    * Tornado's XSRF check is skipped; the WSGI application does its own.
    * Tornado's own defaults (``Server``, ``Content-Type``, ``Date``) are not added, but
      a subclass's ``set_default_headers()`` is honoured, as Tornado documents it: the
      headers it sets go out on every WSGI response (the bridge's own 404/413/503
      included), and a header the application sets replaces a default of the same
      name (names compared case-insensitively).

    .. warning:: ``fallback`` must be a :class:`WSGIContainer` from this package.
    """

    SUPPORTED_METHODS = _AnyMethod(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
    access_log_side = "wsgi"
    #: True when this class overrides ``set_default_headers`` (set once per class).
    _has_default_headers = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._has_default_headers = (
            cls.set_default_headers is not web.RequestHandler.set_default_headers
        )

    def initialize(self, fallback: WSGIContainer) -> None:  # type: ignore[override]
        """:param fallback: the container (from the route's kwargs dict)."""
        if not isinstance(fallback, WSGIContainer):
            raise TypeError("WSGIFallbackHandler needs a wsgi_bridge.WSGIContainer fallback")
        self.fallback = fallback
        self.container = fallback
        self.bytes_sent: int | None = None
        self.response_aborted = False
        self._exchange: Exchange | None = None

    def clear(self) -> None:
        """Reset without ``RequestHandler``'s default headers, then ``set_default_headers()``.

        The exchange writes every byte of the response itself, so the ``Server``,
        ``Content-Type`` and formatted ``Date`` headers that ``RequestHandler.clear``
        prepares for each request would be work thrown away on the hot path.  The
        ``set_default_headers`` hook runs only when a subclass overrides it (decided
        once per class, in ``__init_subclass__``).
        """
        reset_handler_response(self)
        if self._has_default_headers:
            self.set_default_headers()

    def check_xsrf_cookie(self) -> None:
        """No-op: XSRF is the WSGI application's business."""

    def prepare(self) -> None:
        """Headers received: decide at once for uploads, after the (empty) body otherwise.

        A request without a body is started only when Tornado has marked its read side
        finished, so a quick response does not make Tornado close the keep-alive
        connection (it closes when a response ends before the request was read).
        """
        # From here on the response belongs to the exchange, never to RequestHandler.
        mark_handler_finished(self)
        headers = self.request.headers
        self._chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
        length_header = headers.get("Content-Length")
        self._length = 0
        if length_header is not None and not self._chunked:
            try:
                self._length = int(length_header)
            except ValueError:
                self._length = 0  # Tornado answers 400 itself for a bad Content-Length
        self._has_body = self._chunked or self._length > 0
        if self._has_body:
            self._begin()
        body_done = body_future(self.request)
        if body_done is not None:
            body_done.add_done_callback(self._on_body_future)

    def _begin(self) -> None:
        defaults = list(response_headers(self).get_all()) if self._has_default_headers else None
        self._exchange = self.container.begin(
            self.request,
            self.exchange_complete,
            body_length=self._length,
            has_body=self._has_body,
            default_headers=defaults,
        )

    def _on_body_future(self, future: Future[None]) -> None:
        if future.cancelled() or future.exception() is not None:
            return  # connection closed: on_connection_close handles it
        if not self._has_body:
            self._begin()
        if self._exchange is not None:
            self._exchange.body_complete()

    def data_received(self, chunk: bytes) -> Future[None] | None:
        """Feed upload bytes to the exchange; the Future pauses reading (flow control)."""
        if self._exchange is None:
            return None
        return self._exchange.data_received(chunk)

    def on_connection_close(self) -> None:
        """Client went away: stop the application's iteration and uploads."""
        super().on_connection_close()
        if self._exchange is not None:
            self._exchange.on_close()

    def exchange_complete(self, exchange: Exchange) -> None:
        """Called once by the exchange when the response is over: release, log, on_finish."""
        self.container.release(exchange)
        self.set_status(exchange.status_code or 499)
        self.bytes_sent = exchange.bytes_sent
        self.response_aborted = exchange.aborted
        self.application.log_request(self)
        self.on_finish()
        self._exchange = None
