"""Input validation shared by Flask views and native handlers.

:class:`InvalidInput` is the one "your input is wrong" error of the service:
both sides answer it 422 ``{"error": "validation failed", "fields": {...}}``
(mapped in :func:`app.errors.register_error_handlers`). :func:`parse` turns a
pydantic model's verdict into it.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class InvalidInput(ValueError):
    """Input is invalid; nothing was written.

    :param fields: problems by field path (``"kind"``, ``"params.steps"``,
        ``"body"``), each a short message; shown to users and returned by the
        API as ``{"error": "validation failed", "fields": {...}}`` with 422.
    """

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


def parse(model: type[M], data: Any, prefix: str = "") -> M:
    """Validate ``data`` against the pydantic ``model``.

    :param model: a pydantic model class.
    :param data: decoded JSON (any shape; a non-object fails on every field).
    :param prefix: prepended to field paths in errors (``"params."``).
    :returns: the validated model instance.
    :raises InvalidInput: naming every invalid field.
    """
    try:
        return model.model_validate(data)
    except ValidationError as error:
        fields = {}
        for item in error.errors():
            path = ".".join(map(str, item["loc"])) or "body"
            fields[prefix + path] = item["msg"]
        raise InvalidInput(fields) from None
