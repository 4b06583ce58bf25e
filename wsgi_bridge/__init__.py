"""A threaded WSGI container for Tornado: Flask behind native Tornado routes.

Public API::

    from wsgi_bridge import (
        WSGIContainer, WSGIFallbackHandler, access_log_function, ensure_request_id,
    )

    container = WSGIContainer(flask_app, executor, max_queue=16, script_name="/legacy")
    app = tornado.web.Application(
        [..., (r".*", WSGIFallbackHandler, {"fallback": container})],
        log_function=access_log_function,
    )

See ``docs/wsgi-bridge.md``.
"""

from .access_log import access_log_function
from .container import WSGIContainer
from .errors import BridgeError, ClientDisconnected, RequestBodyTooLarge, WSGIAppError
from .file_wrapper import FileWrapper
from .handler import WSGIFallbackHandler
from .request_id import ensure_request_id

__all__ = [
    "BridgeError",
    "ClientDisconnected",
    "FileWrapper",
    "RequestBodyTooLarge",
    "WSGIAppError",
    "WSGIContainer",
    "WSGIFallbackHandler",
    "access_log_function",
    "ensure_request_id",
]
