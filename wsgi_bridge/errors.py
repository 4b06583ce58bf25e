"""Exceptions raised by the bridge.

All derive from :class:`BridgeError`; the request-body ones are also
:class:`OSError` so code that treats ``wsgi.input`` as a file sees an I/O error.
"""

from __future__ import annotations


class BridgeError(Exception):
    """Base class for errors raised by :mod:`wsgi_bridge`."""


class WSGIAppError(BridgeError, ValueError):
    """The WSGI application broke PEP 3333: bad status, header, body type or call order."""


class ClientDisconnected(BridgeError, OSError):
    """The client closed the connection; raised by ``wsgi.input`` reads and ``write()``."""


class RequestBodyTooLarge(BridgeError, OSError):
    """The request body outgrew ``max_body_size``; raised by ``wsgi.input`` reads."""
