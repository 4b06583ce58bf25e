"""Error responses: JSON for the API (``/api/...``), HTML pages elsewhere.

* :class:`~werkzeug.exceptions.HTTPException` -> its own status;
* :class:`app.tasks.service.InvalidTask` -> 422 naming each field;
* :class:`sqlalchemy.exc.IntegrityError` -> 409 (a unique or foreign-key
  conflict), after the session is rolled back so nothing is half-written;
* anything else -> 500, logged with its traceback by Flask.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, render_template, request
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException, InternalServerError

from app.extensions import db
from app.tasks.service import InvalidTask


def wants_json() -> bool:
    """Whether the current request should get a JSON error body."""
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def _respond(status: int, message: str, fields: dict[str, str] | None = None) -> Any:
    if wants_json():
        body: dict[str, Any] = {"error": message}
        if fields:
            body["fields"] = fields
        return body, status
    return render_template("error.html", status=status, message=message), status


def register_error_handlers(app: Flask) -> None:
    """Install the handlers above on ``app``."""

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Any:
        return _respond(error.code or 500, error.description or error.name)

    @app.errorhandler(InvalidTask)
    def invalid_task(error: InvalidTask) -> Any:
        return _respond(422, "validation failed", error.fields)

    @app.errorhandler(IntegrityError)
    def conflict(error: IntegrityError) -> Any:
        db.session.rollback()
        return _respond(409, "conflict with existing data")

    @app.errorhandler(InternalServerError)
    def internal_error(error: InternalServerError) -> Any:
        db.session.rollback()
        return _respond(500, "internal server error")
