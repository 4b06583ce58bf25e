"""Error responses: JSON for the API (``/api/...``), HTML pages elsewhere.

Exceptions are answered through a registry that the skeleton and each feature
add to with :func:`map_exception`; :func:`error_response` reads it, and both
Flask's handlers below and the native ``BaseHandler.write_error`` use it, so
the two sides answer the same error the same way. The skeleton maps:

* :class:`app.validation.InvalidInput` -> 422 ``{"error": "validation failed", "fields"}``
  (and ``"more": n`` when more problems were found than listed);
* :class:`app.validation.MalformedBody` -> 400 ``{"error": message}`` (a body that
  is not a JSON object, or nests too deeply);
* :class:`app.validation.JSONBodyTooLarge` -> 413 ``{"error": message}`` (a JSON body
  over ``MAX_JSON_BODY``, refused before decoding);
* :class:`sqlalchemy.exc.IntegrityError` -> 409 (a unique, foreign-key or
  CHECK conflict), after the session is rolled back so nothing is half-written;
* :class:`~werkzeug.exceptions.HTTPException` -> its own status and headers
  (``Allow`` on a 405, RFC 9110 section 15.5.6; ``Retry-After`` ...), with our
  body: ``{"error": description}`` (:func:`http_error_message`);
* anything else -> 500, logged with its traceback -- in development too:
  :func:`register_error_handlers` stops ``DEBUG`` from propagating view
  exceptions past these handlers (only ``TESTING`` does).

A feature adds its own domain errors in its ``init_app``, e.g.::

    map_exception(app, OrderNotFound, 404, lambda error: {"error": "no such order"})
    map_exception(
        app, QueueDown, 503, lambda error: {"error": str(error)},
        headers=lambda error: {"Retry-After": str(error.retry_after)},
    )
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask, render_template, request
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException, InternalServerError, MethodNotAllowed
from werkzeug.exceptions import default_exceptions as _werkzeug_exceptions
from werkzeug.http import HTTP_STATUS_CODES

from app.extensions import db
from app.validation import InvalidInput, JSONBodyTooLarge, MalformedBody

ErrorBody = dict[str, Any]
ErrorHeaders = dict[str, str]
E = TypeVar("E", bound=Exception)

EXTENSION_KEY = "error_mappings"
"""Where the registry lives: ``flask_app.extensions["error_mappings"]``."""


@dataclass(frozen=True)
class ErrorMapping:
    """How one exception class is answered.

    :ivar status: the HTTP status code.
    :ivar body: builds the JSON body (a dict with at least ``"error"``) from
        the exception.
    :ivar headers: builds extra response headers from the exception (e.g.
        ``Retry-After`` on a 503, RFC 9110 section 10.2.3), or ``None`` for none.
    """

    status: int
    body: Callable[[Any], ErrorBody]
    headers: Callable[[Any], ErrorHeaders] | None = None


def map_exception(
    flask_app: Flask,
    exception: type[E],
    status: int,
    body: Callable[[E], ErrorBody],
    *,
    headers: Callable[[E], ErrorHeaders] | None = None,
) -> None:
    """Answer ``exception`` (and its subclasses) with ``status`` and ``body(error)`` on both sides.

    Registers a Flask error handler (JSON under ``/api/``, the HTML error page
    elsewhere; the session is rolled back first) and records the mapping for
    native handlers (:func:`error_response`). The closest class in the
    exception's MRO wins.

    :param flask_app: the app to register on.
    :param exception: an exception class, e.g. ``OrderNotFound``.
    :param status: the HTTP status code, e.g. 404.
    :param body: returns the JSON body, e.g. ``lambda e: {"error": "no such order"}``.
    :param headers: returns extra response headers, e.g.
        ``lambda e: {"Retry-After": str(e.retry_after)}``; sent with the JSON
        body and with the HTML error page alike (:func:`error_headers`).
    """
    mappings: dict[type[BaseException], ErrorMapping] = flask_app.extensions.setdefault(
        EXTENSION_KEY, {}
    )
    mappings[exception] = ErrorMapping(status, body, headers)
    flask_app.register_error_handler(exception, _domain_error)


def _mapping(flask_app: Flask, error: BaseException) -> ErrorMapping | None:
    """The mapping of the closest class in ``error``'s MRO, or ``None``."""
    mappings: dict[type[BaseException], ErrorMapping] = flask_app.extensions.get(EXTENSION_KEY, {})
    for cls in type(error).__mro__:
        mapping = mappings.get(cls)
        if mapping is not None:
            return mapping
    return None


def error_response(flask_app: Flask, error: BaseException) -> tuple[int, ErrorBody] | None:
    """Return ``(status, JSON body)`` for a mapped exception, or ``None``.

    :param flask_app: the app whose registry to read (:func:`map_exception`).
    :param error: an exception raised by a view, a handler or a service.
    :returns: e.g. ``(422, {"error": "validation failed", "fields": {...}})``;
        ``None`` for exceptions nobody mapped -- bugs (the caller answers 500).
    """
    mapping = _mapping(flask_app, error)
    return None if mapping is None else (mapping.status, mapping.body(error))


def error_headers(flask_app: Flask, error: BaseException) -> ErrorHeaders:
    """Return the extra headers of a mapped exception (``{}`` if none or unmapped).

    :param flask_app: the app whose registry to read (:func:`map_exception`).
    :param error: an exception raised by a view, a handler or a service.
    :returns: e.g. ``{"Retry-After": "5"}`` for a 503 mapped with ``headers``.
    """
    mapping = _mapping(flask_app, error)
    if mapping is None or mapping.headers is None:
        return {}
    return mapping.headers(error)


def http_error_message(status: int) -> str:
    """Return the message Flask's handler below gives a plain HTTP error ``status``.

    Werkzeug's description of the status (``405`` -> "The method is not
    allowed for the requested URL."), else its reason phrase, else
    ``"HTTP error <status>"``. Native handlers use it for errors raised without a
    reason of their own, so both sides word them alike.

    :param status: an HTTP status code, 400 to 599.
    """
    exception = _werkzeug_exceptions.get(status)
    if exception is not None and exception.description:
        return str(exception.description)
    return HTTP_STATUS_CODES.get(status, f"HTTP error {status}")


def allow_header(methods: Iterable[str]) -> str:
    """Return an ``Allow`` value: the methods sorted, comma-separated (RFC 9110 section 10.2.1).

    Sorted so that both sides send the same bytes (Werkzeug lists a set, in no
    fixed order).

    :param methods: an iterable of method names.
    """
    return ", ".join(sorted(set(methods)))


def wants_json() -> bool:
    """Whether the current Flask request should get a JSON error body."""
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def _respond(status: int, body: ErrorBody, headers: list[tuple[str, str]] | None = None) -> Any:
    if wants_json():
        return body, status, headers or []
    page = render_template("error.html", status=status, message=body["error"])
    return page, status, headers or []


def _exception_headers(error: HTTPException) -> list[tuple[str, str]]:
    """The headers Werkzeug gives ``error`` (``Allow``, ``Retry-After``, ``WWW-Authenticate``...).

    ``Content-Type`` is left out: the body is ours. ``Allow`` is sorted
    (:func:`allow_header`).
    """
    headers = [(k, v) for k, v in error.get_headers() if k.lower() != "content-type"]
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        headers = [(k, v) for k, v in headers if k.lower() != "allow"]
        headers.append(("Allow", allow_header(error.valid_methods)))
    return headers


def _domain_error(error: Exception) -> Any:
    """Flask's handler for every mapped exception: roll back, answer as mapped."""
    from flask import current_app

    db.session.rollback()
    mapped = error_response(current_app, error)
    status, body = mapped or (500, {"error": "internal server error"})
    return _respond(status, body, list(error_headers(current_app, error).items()))


def invalid_input_body(error: InvalidInput) -> ErrorBody:
    """The 422 body of :class:`~app.validation.InvalidInput`, on both sides.

    :returns: ``{"error": "validation failed", "fields": {path: message}}``, plus
        ``"more": n`` when ``n`` further problems were found but not listed.
    """
    body: ErrorBody = {"error": "validation failed", "fields": error.fields}
    if error.more:
        body["more"] = error.more
    return body


def register_error_handlers(app: Flask) -> None:
    """Install the skeleton's handlers on ``app``, and let them see every view error.

    Flask re-raises a view's exception instead of answering it with the 500
    handler when ``PROPAGATE_EXCEPTIONS`` is true, which by default it is in
    debug *and* testing mode. Behind the WSGI bridge that turns every failing
    view in development into the bridge's plain-text 500, even under
    ``/api/``. So unless the configuration sets it, it becomes
    ``app.testing``: tests still see exceptions raised (WebTest, Flask's test
    client), while a served app -- development included -- answers with the
    handlers below (JSON under ``/api/``, the HTML error page elsewhere) and
    logs the traceback.
    """
    if app.config.get("PROPAGATE_EXCEPTIONS") is None:
        app.config["PROPAGATE_EXCEPTIONS"] = app.testing

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Any:
        if error.response is not None:  # abort(response): the view chose the response
            return error.response
        body = {"error": error.description or error.name}
        return _respond(error.code or 500, body, _exception_headers(error))

    map_exception(app, InvalidInput, 422, invalid_input_body)
    map_exception(app, MalformedBody, 400, lambda error: {"error": str(error)})
    map_exception(app, JSONBodyTooLarge, 413, lambda error: {"error": str(error)})
    map_exception(app, IntegrityError, 409, lambda _error: {"error": "conflict with existing data"})

    @app.errorhandler(InternalServerError)
    def internal_error(error: InternalServerError) -> Any:
        db.session.rollback()
        return _respond(500, {"error": "internal server error"})
