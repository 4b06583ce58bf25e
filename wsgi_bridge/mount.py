"""`WSGIFallback`: the fast mount, a routing target without a ``RequestHandler``.

:class:`~wsgi_bridge.handler.WSGIFallbackHandler` is a ``tornado.web.RequestHandler``:
per request Tornado builds the handler (UI namespace, ``clear()``, the close callback),
a ``_prepared_future``, runs its ``_execute`` coroutine on the event loop, converts
futures and resolves a body future, all on the IOLoop thread and all thrown away,
because the exchange writes the response itself.  :class:`WSGIFallback` is a
``tornado.routing.Router`` instead: Tornado's routing (``RuleRouter.get_target_delegate``)
asks it for the request's ``HTTPMessageDelegate`` and feeds that delegate the body
and the end of the request directly.  Same guarantees as the handler (streaming
uploads with flow control, 413/503/504, drain, the bridge's own ``max_body_size``,
disconnects), with less IOLoop work per request.

Mount it as the last rule::

    Application([..., (r".*", WSGIFallback(container))], log_function=access_log_function)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from tornado import httputil
from tornado.concurrent import Future
from tornado.routing import Router

from .access_log import access_log_function
from .container import WSGIContainer
from .exchange import Exchange
from .types import HeaderList

__all__ = ["ROUTE_ENVIRON_KEY", "AccessRecord", "WSGIFallback"]

#: WSGI environ key an application may set to name the route pattern that served the
#: request (Flask: ``request.url_rule.rule``, e.g. ``"/api/items/<int:item_id>"``);
#: :class:`AccessRecord` passes it on as ``route`` (None when the application did not
#: set it, or never ran: 503, 413, 404 outside ``script_name``).  A pattern, never the
#: raw path, so metrics keyed by it keep a bounded number of series.
ROUTE_ENVIRON_KEY = "wsgi_bridge.route"


class AccessRecord:
    """What an access-log function gets for a request served by :class:`WSGIFallback`.

    The attributes :func:`~wsgi_bridge.access_log.access_log_function` reads from a
    finished handler: ``request``, ``get_status()``, ``bytes_sent`` (body bytes),
    ``response_aborted`` and ``access_log_side`` (the mount's ``side``, default
    ``"wsgi"``); plus ``route``, the application's :data:`ROUTE_ENVIRON_KEY` or None.
    """

    __slots__ = ("access_log_side", "bytes_sent", "request", "response_aborted", "route", "status")

    def __init__(
        self, request: httputil.HTTPServerRequest, exchange: Exchange, side: str = "wsgi"
    ) -> None:
        """:param request: the request; :param exchange: its finished exchange;
        :param side: the name the access line gives the mount."""
        self.request = request
        self.access_log_side = side
        route = exchange.environ.get(ROUTE_ENVIRON_KEY)
        #: The route pattern the application reported, or None.
        self.route: str | None = route if isinstance(route, str) else None
        #: Status sent, or 499 (nginx's "client closed request") when none was.
        self.status = exchange.status_code or 499
        self.bytes_sent: int = exchange.bytes_sent
        self.response_aborted: bool = exchange.aborted

    def get_status(self) -> int:
        """The response status, as ``RequestHandler.get_status()``."""
        return self.status


class WSGIFallback(Router):
    """Route requests to a :class:`~wsgi_bridge.container.WSGIContainer`, fast.

    A ``tornado.routing.Router`` used as a rule's target: the last rule of
    ``tornado.web.Application``, ``(r".*", WSGIFallback(container))``.  Behaves as
    :class:`~wsgi_bridge.handler.WSGIFallbackHandler` (every method goes to the
    application, uploads stream with flow control, small bodies are read before
    dispatch, the container's ``max_body_size`` replaces the server's for these
    requests) without creating a ``RequestHandler`` per request.  What differs:
    there is no handler to subclass, so

    * default headers are given as ``default_headers`` (instead of a
      ``set_default_headers()`` override); a header the application sets replaces a
      default of the same name (case-insensitive), as with the handler;
    * the access line goes to ``log_function(record)`` with an :class:`AccessRecord`
      (default :func:`~wsgi_bridge.access_log.access_log_function`, the same line as the
      handler gives with ``Application(log_function=access_log_function)``); pass
      ``log_function=None`` for no access log.  ``Application.log_request`` and
      ``on_finish`` are not called.

    :param container: the container.
    :param default_headers: ``(name, value)`` pairs sent on every response (the
        bridge's own 404/413/503 included), unless the application sets the name.
    :param log_function: called once per request on the IOLoop thread after the
        response was handed to the connection, or None.
    :param side: the ``side`` of the access line and :class:`AccessRecord` (default
        ``"wsgi"``; the service passes ``"flask"``).
    :raises TypeError: ``container`` is not a :class:`WSGIContainer`.
    """

    def __init__(
        self,
        container: WSGIContainer,
        *,
        default_headers: Iterable[tuple[str, str]] = (),
        log_function: Callable[[Any], None] | None = access_log_function,
        side: str = "wsgi",
    ) -> None:
        if not isinstance(container, WSGIContainer):
            raise TypeError("WSGIFallback needs a wsgi_bridge.WSGIContainer")
        self.container = container
        self.default_headers: HeaderList | None = list(default_headers) or None
        self.log_function = log_function
        self.side = side

    def find_handler(
        self, request: httputil.HTTPServerRequest, **kwargs: Any
    ) -> httputil.HTTPMessageDelegate:
        """The delegate serving ``request`` (Tornado's routing calls it; IOLoop thread)."""
        return _FallbackDelegate(self, request)


class _FallbackDelegate(httputil.HTTPMessageDelegate):
    """One request through :class:`WSGIFallback` (IOLoop thread only)."""

    __slots__ = ("_exchange", "_has_body", "_length", "_mount", "request")

    def __init__(self, mount: WSGIFallback, request: httputil.HTTPServerRequest) -> None:
        self._mount = mount
        self.request = request
        self._exchange: Exchange | None = None
        self._length = 0
        self._has_body = False

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        """Headers read: start at once for a body, after the (empty) body otherwise.

        A request without a body is started in :meth:`finish`, once Tornado has marked
        its read side finished: a response ending before that makes Tornado close the
        keep-alive connection.
        """
        request = self.request
        connection: Any = request.connection
        connection.set_close_callback(self.on_connection_close)
        chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
        length_header = headers.get("Content-Length")
        if length_header is not None and not chunked:
            try:
                self._length = int(length_header)
            except ValueError:
                self._length = 0  # Tornado answers 400 itself for a bad Content-Length
        self._has_body = chunked or self._length > 0
        if self._has_body:
            self._begin()
        return None

    def _begin(self) -> None:
        mount = self._mount
        self._exchange = mount.container.begin(
            self.request,
            self._complete,
            body_length=self._length,
            has_body=self._has_body,
            default_headers=mount.default_headers,
        )

    def data_received(self, chunk: bytes) -> Future[None] | None:
        """Feed upload bytes to the exchange; the Future pauses reading (flow control)."""
        if self._exchange is None:
            return None
        return self._exchange.data_received(chunk)

    def finish(self) -> None:
        """The whole request was read: start the application (or let it read EOF)."""
        if not self._has_body:
            self._begin()
        if self._exchange is not None:
            self._exchange.body_complete()

    def on_connection_close(self) -> None:
        """Client went away: stop the application's iteration and uploads."""
        if self._exchange is not None:
            self._exchange.on_close()

    def _complete(self, exchange: Exchange) -> None:
        mount = self._mount
        mount.container.release(exchange)
        self._exchange = None
        connection: Any = self.request.connection
        if connection is not None and hasattr(connection, "set_close_callback"):
            connection.set_close_callback(None)
        if mount.log_function is not None:
            mount.log_function(AccessRecord(self.request, exchange, mount.side))
