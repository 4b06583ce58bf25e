"""Error responses: JSON for the API (``/api/...``), HTML pages elsewhere.

:func:`error_response` maps the domain's exceptions to a status and a JSON
body; Flask's handlers below and the native ``BaseHandler.write_error`` both
use it, so the two sides answer the same error the same way:

* :class:`app.tasks.service.InvalidInput` -> 422 ``{"error", "fields"}``;
* :class:`app.tasks.service.TaskNotFound` -> 404;
* :class:`sqlalchemy.exc.IntegrityError` -> 409 (a unique, foreign-key or
  CHECK conflict), after the session is rolled back so nothing is half-written;
* :class:`~werkzeug.exceptions.HTTPException` -> its own status;
* anything else -> 500, logged with its traceback.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, render_template, request
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException, InternalServerError

from app.extensions import db
from app.tasks.service import InvalidInput, TaskNotFound

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
        return 404, {"error": "no such task"}
    if isinstance(error, IntegrityError):
        return 409, {"error": "conflict with existing data"}
    return None


def wants_json() -> bool:
    """Whether the current Flask request should get a JSON error body."""
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def _respond(status: int, body: ErrorBody) -> Any:
    if wants_json():
        return body, status
    return render_template("error.html", status=status, message=body["error"]), status


def register_error_handlers(app: Flask) -> None:
    """Install the handlers above on ``app``."""

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Any:
        return _respond(error.code or 500, {"error": error.description or error.name})

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
