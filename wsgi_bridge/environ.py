"""Building the PEP 3333 ``environ`` from a Tornado request (no I/O).

The request object is only read, never changed.  Follows PEP 3333 "environ
Variables" and the CGI/1.1 variables of RFC 3875 §4.1, with the conventions of
gunicorn and werkzeug where PEP 3333 is silent (``REQUEST_URI``/``RAW_URI``,
``REMOTE_PORT``, ``wsgi.input_terminated``, dropping header names with ``_``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import IO, Any
from urllib.parse import unquote_to_bytes

import tornado
from tornado.httputil import HTTPServerRequest

from .proxy import TrustedProxies, resolve_forwarded
from .request_id import REQUEST_ID_ENVIRON_KEY
from .types import Environ

#: ``SERVER_SOFTWARE`` when the container is given none (RFC 3875 §4.1.17 form:
#: product tokens, the bridge first, then the server under it).
DEFAULT_SERVER_SOFTWARE = f"wsgi_bridge TornadoServer/{tornado.version}"


class NotMounted(Exception):
    """The request path is outside the container's ``script_name`` prefix."""


def split_script_name(path_info: str, script_name: str) -> tuple[str, str]:
    """Split a decoded path on the mount prefix, at a segment boundary.

    :param path_info: percent-decoded path, e.g. ``"/legacy/users"``.
    :param script_name: mount prefix without trailing slash, e.g. ``"/legacy"``; ``""``
        means mounted at the root.
    :returns: ``(SCRIPT_NAME, PATH_INFO)``, e.g. ``("/legacy", "/users")``.
    :raises NotMounted: when ``path_info`` is not ``script_name`` itself or below it
        (``/legacyx`` is not inside ``/legacy``).
    """
    if not script_name:
        return "", path_info
    if path_info == script_name:
        return script_name, ""
    if path_info.startswith(script_name + "/"):
        return script_name, path_info[len(script_name) :]
    raise NotMounted(path_info)


def split_host(host: str, default_port: str) -> tuple[str, str]:
    """Split a ``Host`` value into ``(name, port)`` strings; handles ``[v6]:port``.

    The port is the all-digit part after the last ``:`` (after the ``]`` of an IPv6
    literal); an empty port means ``default_port`` (RFC 3986 §3.2.3). Anything else,
    including an unclosed ``[``, stays whole as the name, with ``default_port``.

    :param host: the ``Host`` (or trusted ``X-Forwarded-Host``) value.
    :param default_port: ``"80"`` or ``"443"``, by the request's scheme.
    :returns: ``(name, port)``, e.g. ``("[::1]", "8443")``.
    """
    if host.startswith("["):
        end = host.find("]")
        if end == -1:
            return host, default_port
        rest = host[end + 1 :]
        port = rest[1:] if rest.startswith(":") and rest[1:].isdigit() else default_port
        return host[: end + 1], port
    name, sep, port = host.rpartition(":")
    if sep and name and (port.isdigit() or not port):
        return name, port or default_port
    return host, default_port


def local_address(request: HTTPServerRequest, default_port: str) -> tuple[str, str]:
    """The ``(host, port)`` strings of the local end of ``request``'s connection.

    Read from the socket (``getsockname()``) of the connection's stream.

    :param default_port: the port to give when there is no socket (a closed stream, a
        request built without a connection): ``"80"`` or ``"443"``.
    :returns: e.g. ``("127.0.0.1", "8080")``; ``(request.host, default_port)`` when the
        socket is unknown.
    """
    stream = getattr(request.connection, "stream", None)
    sock = getattr(stream, "socket", None)
    if sock is not None:
        try:
            name = sock.getsockname()
        except OSError:
            name = None
        if isinstance(name, tuple) and len(name) >= 2:
            host = str(name[0])
            return (f"[{host}]" if ":" in host else host), str(name[1])
    return request.host, default_port


def build_environ(
    request: HTTPServerRequest,
    *,
    wsgi_input: IO[bytes] | Any,
    request_id: str,
    script_name: str = "",
    trusted_proxies: TrustedProxies | None = None,
    file_wrapper: Callable[..., Any] | None = None,
    errors: IO[str] | None = None,
    server_software: str = DEFAULT_SERVER_SOFTWARE,
) -> Environ:
    """Return the WSGI environ for ``request``.

    :param request: the Tornado request (read only).
    :param wsgi_input: the object to expose as ``wsgi.input``.
    :param request_id: the id from :func:`~wsgi_bridge.request_id.ensure_request_id`;
        put in ``HTTP_X_REQUEST_ID`` and ``wsgi_bridge.request_id``.
    :param script_name: mount prefix, see :func:`split_script_name`.
    :param trusted_proxies: peers whose ``X-Forwarded-For/-Proto/-Host`` are honoured.
    :param file_wrapper: the ``wsgi.file_wrapper`` callable.
    :param errors: ``wsgi.errors`` stream (default ``sys.stderr``).
    :param server_software: ``SERVER_SOFTWARE`` (RFC 3875 §4.1.17).
    :returns: a new dict; CGI values are native ``str`` (latin-1 "bytes-as-str" for the
        path, PEP 3333 "Unicode Issues"), ``SERVER_PORT`` a ``str``.
    :raises NotMounted: when the path is outside ``script_name``.

    Header rules: ``Content-Type``/``Content-Length`` become ``CONTENT_TYPE``/
    ``CONTENT_LENGTH`` (absent when the request has none, and no ``CONTENT_LENGTH``
    for chunked uploads); other headers become ``HTTP_*``; repeated headers are joined
    with ``", "`` (``Cookie`` with ``"; "``, RFC 9113 §8.2.3); header *names*
    containing ``_`` are dropped, because ``X_Forwarded_For`` would otherwise map to
    the same key as ``X-Forwarded-For`` (gunicorn and nginx do the same).
    """
    # Tornado decoded the request-target as latin-1: encode it back to the bytes the
    # client sent before percent-decoding, so raw bytes 0x80-0xFF reach PATH_INFO
    # byte for byte (PEP 3333 "Unicode Issues"), not re-encoded as UTF-8.
    decoded = unquote_to_bytes(request.path.encode("latin-1")).decode("latin-1")
    script, path_info = split_script_name(decoded, script_name)
    context = getattr(request.connection, "context", None)
    address = getattr(context, "address", None)
    scheme = request.protocol
    default_port = "443" if scheme == "https" else "80"
    host_header = request.headers.get("Host")
    if host_header:
        server_name, server_port = split_host(host_header, default_port)
    else:
        # No Host (HTTP/1.0): the address and port the connection arrived on, so URL
        # reconstruction (PEP 3333) points back at this server (RFC 3875 §4.1.14-15).
        server_name, server_port = local_address(request, default_port)

    environ: Environ = {
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": script,
        "PATH_INFO": path_info,
        "QUERY_STRING": request.query,
        "REQUEST_URI": request.uri,
        "RAW_URI": request.uri,
        "SERVER_NAME": server_name,
        "SERVER_PORT": server_port,
        "SERVER_PROTOCOL": request.version,
        "SERVER_SOFTWARE": server_software,
        "REMOTE_ADDR": request.remote_ip,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scheme,
        "wsgi.input": wsgi_input,
        "wsgi.errors": errors if errors is not None else sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
    }
    if isinstance(address, tuple) and len(address) >= 2:
        environ["REMOTE_PORT"] = str(address[1])
    if file_wrapper is not None:
        environ["wsgi.file_wrapper"] = file_wrapper

    chunked = False
    for name, value in request.headers.get_all():
        if "_" in name:
            continue
        lname = name.lower()
        if lname == "content-type":
            key = "CONTENT_TYPE"
        elif lname == "content-length":
            key = "CONTENT_LENGTH"
        else:
            if lname == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            key = "HTTP_" + name.upper().replace("-", "_")
        if key in environ:
            sep = "; " if key == "HTTP_COOKIE" else ", "
            environ[key] = environ[key] + sep + value
        else:
            environ[key] = value
    if chunked:
        environ.pop("CONTENT_LENGTH", None)
    environ["HTTP_X_REQUEST_ID"] = request_id
    environ[REQUEST_ID_ENVIRON_KEY] = request_id

    if trusted_proxies:
        peer = address[0] if isinstance(address, tuple) and address else request.remote_ip
        fwd = resolve_forwarded(
            str(peer),
            trusted_proxies,
            environ.get("HTTP_X_FORWARDED_FOR"),
            environ.get("HTTP_X_FORWARDED_PROTO"),
            environ.get("HTTP_X_FORWARDED_HOST"),
        )
        if fwd.remote_addr is not None:
            environ["REMOTE_ADDR"] = fwd.remote_addr
            environ.pop("REMOTE_PORT", None)
        if fwd.scheme is not None:
            environ["wsgi.url_scheme"] = fwd.scheme
        if fwd.host is not None:
            environ["HTTP_HOST"] = fwd.host
            default = "443" if environ["wsgi.url_scheme"] == "https" else "80"
            environ["SERVER_NAME"], environ["SERVER_PORT"] = split_host(fwd.host, default)
    return environ
