"""``X-Forwarded-*`` from trusted proxies, applied once per request for the whole server.

:class:`~wsgi_bridge.http1.HTTPServer` (``trusted_proxies=...``) wraps each request's
delegate in :class:`TrustedForwarding`, which rewrites what Tornado builds the
``HTTPServerRequest`` from before it is built:

* ``request.remote_ip`` -- the client address (the rightmost ``X-Forwarded-For`` hop
  that is not a trusted proxy);
* ``request.protocol`` -- ``X-Forwarded-Proto`` (``http`` or ``https``), so
  ``Secure`` cookies, HSTS and absolute URLs follow the client's scheme;
* ``Host`` -- ``X-Forwarded-Host`` when it looks like ``host[:port]``.

Only when the TCP peer is in ``trusted_proxies``, with the rule of
:func:`wsgi_bridge.proxy.resolve_forwarded` -- the same one the WSGI environ uses, so
native handlers, Flask (``REMOTE_ADDR``, ``wsgi.url_scheme``) and the access log all
see one client address and scheme. Unlike Tornado's ``HTTPServer(xheaders=True)``,
which believes any peer (a client could then pick its own address), and reads
``X-Real-Ip``/``X-Scheme``, which this does not.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from tornado import httputil

from .proxy import TrustedProxies, resolve_forwarded

__all__ = ["TrustedForwarding"]


class TrustedForwarding(httputil.HTTPMessageDelegate):
    """Delegate wrapper: apply a trusted proxy's ``X-Forwarded-*`` to one request.

    The connection's context (Tornado's ``_HTTPRequestContext``: ``remote_ip``,
    ``protocol``, ``address``) is shared by the requests of a keep-alive connection;
    the rewrite is undone when the request was read, as Tornado's own adapter does.
    The request object keeps the rewritten values (it copies them when it is built).
    IOLoop thread only.

    :param delegate: the delegate serving the request (the application's).
    :param request_conn: the request's ``HTTP1Connection`` (its ``context`` is rewritten).
    :param trusted: the trusted proxy networks (non-empty).
    """

    __slots__ = ("_saved", "connection", "delegate", "trusted")

    def __init__(
        self,
        delegate: httputil.HTTPMessageDelegate,
        request_conn: httputil.HTTPConnection,
        trusted: TrustedProxies,
    ) -> None:
        self.delegate = delegate
        self.connection = request_conn
        self.trusted = trusted
        self._saved: tuple[Any, Any] | None = None

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        context: Any = getattr(self.connection, "context", None)
        address = getattr(context, "address", None)
        if isinstance(address, tuple) and address:
            forwarded = resolve_forwarded(
                str(address[0]),
                self.trusted,
                _joined(headers, "X-Forwarded-For"),
                _joined(headers, "X-Forwarded-Proto"),
                _joined(headers, "X-Forwarded-Host"),
            )
            self._saved = (context.remote_ip, context.protocol)
            if forwarded.remote_addr is not None:
                context.remote_ip = forwarded.remote_addr
            if forwarded.scheme is not None:
                context.protocol = forwarded.scheme
            if forwarded.host is not None:
                headers["Host"] = forwarded.host
        return self.delegate.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        return self.delegate.data_received(chunk)

    def finish(self) -> None:
        self.delegate.finish()
        self._restore()

    def on_connection_close(self) -> None:
        self.delegate.on_connection_close()
        self._restore()

    def _restore(self) -> None:
        if self._saved is not None:
            context: Any = getattr(self.connection, "context", None)
            context.remote_ip, context.protocol = self._saved
            self._saved = None


def _joined(headers: httputil.HTTPHeaders, name: str) -> str | None:
    """Every value of ``name``, joined with ``", "`` (a proxy may add a second line)."""
    values = headers.get_list(name)
    return ", ".join(values) if values else None
