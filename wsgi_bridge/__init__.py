"""A threaded WSGI container for Tornado: Flask behind native Tornado routes.

Public API::

    from wsgi_bridge import (
        HTTPServer, WSGIContainer, WSGIFallbackHandler, access_log_function, ensure_request_id,
    )

    container = WSGIContainer(flask_app, executor, max_workers=threads, script_name="/legacy")
    app = tornado.web.Application(
        [..., (r".*", WSGIFallback(container))],   # or WSGIFallbackHandler, {"fallback": ...}
        log_function=access_log_function,
    )
    HTTPServer(app).listen(8000)   # Tornado's HTTPServer + the HTTP/1.1 edges it leaves open

Two more public modules, imported by name:

* :mod:`wsgi_bridge.compat`: the one place this project touches private attributes
  of Tornado and ``concurrent.futures`` (``live_threads``, ``headers_written``,
  ``response_headers``, ``pending_output``, ...);
* :mod:`wsgi_bridge.testing`: the real-socket test harness (``BridgeServer``...).

See ``docs/wsgi-bridge.md``.
"""

from .access_log import access_log_function
from .container import WSGIContainer
from .deadline import CLIENT_DISCONNECTED_KEY, DEADLINE_KEY, Deadline, DisconnectEvent
from .errors import BridgeError, ClientDisconnected, RequestBodyTooLarge, WSGIAppError
from .file_wrapper import FileWrapper
from .handler import WSGIFallbackHandler
from .http1 import HTTPServer
from .mount import WSGIFallback
from .request_id import ensure_request_id

__all__ = [
    "CLIENT_DISCONNECTED_KEY",
    "DEADLINE_KEY",
    "BridgeError",
    "ClientDisconnected",
    "Deadline",
    "DisconnectEvent",
    "FileWrapper",
    "HTTPServer",
    "RequestBodyTooLarge",
    "WSGIAppError",
    "WSGIContainer",
    "WSGIFallback",
    "WSGIFallbackHandler",
    "access_log_function",
    "ensure_request_id",
]
