"""Errors of native handlers, answered with the status and JSON body Flask gives them."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import tornado.web

from app.errors import allow_header, error_headers, error_response, http_error_message
from tornado_handlers.mixins.json_io import JSONMixin
from tornado_handlers.mixins.methods import MethodParityMixin


class JSONErrorsMixin(JSONMixin, MethodParityMixin):
    """``write_error`` answers ``{"error": ...}`` as :mod:`app.errors` does for Flask."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Write a JSON error body instead of Tornado's HTML page.

        Mapped exceptions get the status and body Flask gives them
        (:func:`app.errors.error_response`: 422 with the fields, 404, 409 ...)
        and the headers mapped with them (:func:`app.errors.error_headers`:
        ``Retry-After`` on a 503 ...);
        an :class:`~tornado.web.HTTPError` with a ``reason`` gets
        ``{"error": reason}``; other client errors the message Flask gives
        the status (:func:`app.errors.http_error_message`); server errors
        ``{"error": "internal server error"}``. A 405 carries ``Allow``
        (RFC 9110 section 15.5.6).

        :param status_code: the status Tornado chose (500 for an unexpected exception).
        :param kwargs: ``exc_info`` when an exception is being answered.
        """
        exc_info = kwargs.get("exc_info")
        error = exc_info[1] if exc_info else None
        mapped = error_response(self.flask_app, error) if error is not None else None
        if error is not None and mapped is not None:
            status_code, body = mapped
            self.set_status(status_code)
            for name, value in error_headers(self.flask_app, error).items():
                self.set_header(name, value)
        elif status_code >= 500:
            body = {"error": "internal server error"}
        elif isinstance(error, tornado.web.HTTPError) and error.reason:
            body = {"error": error.reason}
        else:
            body = {"error": http_error_message(status_code)}
        if status_code == 405:
            self.set_header("Allow", allow_header(self.implemented_methods()))
        self.set_header("Content-Type", "application/json")
        self.finish(self.json_bytes(body))

    def log_exception(
        self,
        typ: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Mapped errors are answers, not failures: log only real errors."""
        if value is not None and error_response(self.flask_app, value) is not None:
            return
        super().log_exception(typ, value, tb)
