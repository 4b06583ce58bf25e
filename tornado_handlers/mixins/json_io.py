"""JSON in and out of native handlers, exactly as Flask reads and writes it."""

from __future__ import annotations

from typing import Any, cast

import tornado.web
from flask import Flask, Response

from app.validation import MalformedBody, decode_json_object


class JSONMixin(tornado.web.RequestHandler):
    """:meth:`json_body` reads a request as ``request.get_json(silent=True)``;
    :meth:`write_json` writes the bytes a Flask view returning the same data sends.

    :ivar flask_app: the Flask app whose JSON provider to use.
    """

    flask_app: Flask

    def json_bytes(self, data: Any) -> bytes:
        """Return ``data`` serialized exactly as a Flask view returning it would be.

        Flask's JSON provider (``flask_app.json``) does the work: keys sorted,
        compact separators and a final newline in production, two-space
        indentation in debug mode, the provider's ``default`` for dates,
        decimals and dataclasses. So a ported route sends the very bytes its
        Flask view sent.

        :param data: JSON-ready data (``dict``, ``list``, ``str``, numbers ...).
        :raises TypeError: if ``data`` holds something the provider cannot serialize.
        """
        response = cast(Response, self.flask_app.json.response(data))
        return response.get_data()

    def write_json(self, data: Any, status: int = 200) -> None:
        """Write ``data`` as the JSON response body with ``status`` (:meth:`json_bytes`).

        :param data: JSON-ready data.
        :param status: the HTTP status code.
        """
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.write(self.json_bytes(data))

    def json_body(self) -> dict[str, Any]:
        """Return the request body decoded as a JSON object, as Flask reads it.

        As ``request.get_json(silent=True)``: only with a JSON ``Content-Type``
        (``application/json`` or ``application/*+json``), otherwise no body at all.

        Decoded by :func:`app.validation.decode_json_object`, as Flask views
        decode it: the nesting depth is checked before decoding.

        :raises app.validation.MalformedBody: no JSON object, or one nested too
            deeply (400, answered through the error registry).
        """
        mimetype = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        is_json = mimetype == "application/json" or (
            mimetype.startswith("application/") and mimetype.endswith("+json")
        )
        if not is_json:
            raise MalformedBody("the body must be a JSON object")
        return decode_json_object(self.request.body)
