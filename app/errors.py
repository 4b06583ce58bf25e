"""Error responses: JSON for the API (``/api/...``), HTML pages elsewhere.

:func:`error_response` maps the domain's exceptions to a status and a JSON
body; Flask's handlers below and the native ``BaseHandler.write_error`` both
use it, so the two sides answer the same error the same way:

* :class:`app.tasks.service.InvalidInput` -> 422 ``{"error", "fields"}``;
* :class:`app.tasks.service.TaskNotFound` -> 404 ``{"error": "no such task"}``
  (the ``<task_id:...>`` rules answer an out-of-range id the same way);
* :class:`sqlalchemy.exc.IntegrityError` -> 409 (a unique, foreign-key or
  CHECK conflict), after the session is rolled back so nothing is half-written;
* :class:`~werkzeug.exceptions.HTTPException` -> its own status and headers
  (``Allow`` on a 405, RFC 9110 section 15.5.6; ``Retry-After`` ...), with our
  body: ``{"error": description}`` (:func:`http_error_message`);
* anything else -> 500, logged with its traceback -- in development too:
  :func:`register_error_handlers` stops ``DEBUG`` from propagating view
  exceptions past these handlers (only ``TESTING`` does).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, render_template, request
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException, InternalServerError, MethodNotAllowed
from werkzeug.exceptions import default_exceptions as _werkzeug_exceptions
from werkzeug.http import HTTP_STATUS_CODES

from app.extensions import db
from app.tasks.service import NO_SUCH_TASK, InvalidInput, TaskNotFound

ErrorBody = dict[str, Any]


def error_response(error: BaseException) -> tuple[int, ErrorBody] | None:
    """Return ``(status, JSON body)`` for a domain exception, or ``None``.

    :param error: an exception raised by a view, a handler or a service.
    :returns: e.g. ``(422, {"error": "validation failed", "fields": {...}})``;
        ``None`` for exceptions that are bugs (the caller answers 500).
    """
    if isinstance(error, InvalidInput):
        return 422, {"error": "validation failed", "fields": error.fields}
    if isinstance(error, TaskNotFound):
        return 404, {"error": NO_SUCH_TASK}
    if isinstance(error, IntegrityError):
        return 409, {"error": "conflict with existing data"}
    return None


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


def allow_header(methods: Any) -> str:
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


def register_error_handlers(app: Flask) -> None:
    """Install the handlers above on ``app``, and let them see every view error.

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

    @app.errorhandler(InvalidInput)
    @app.errorhandler(TaskNotFound)
    @app.errorhandler(IntegrityError)
    def domain_error(error: Exception) -> Any:
        db.session.rollback()
        status, body = error_response(error) or (500, {"error": "internal server error"})
        return _respond(status, body)

    @app.errorhandler(InternalServerError)
    def internal_error(error: InternalServerError) -> Any:
        db.session.rollback()
        return _respond(500, {"error": "internal server error"})
