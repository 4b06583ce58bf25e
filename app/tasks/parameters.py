"""What a kind's parameters are, read from its pydantic params model.

The task form (:mod:`app.tasks.forms`) builds its fields from this and the
page's messages (:mod:`app.tasks.wording`) describe a field with it, so a new
kind (:data:`app.tasks.kinds.KINDS`) needs no template or form edits: its
model's field names, ``title``, default and ``ge``/``le`` bounds are enough.
"""

from __future__ import annotations

from dataclasses import dataclass

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo


@dataclass(frozen=True)
class Parameter:
    """One number parameter of a kind, as a form shows it.

    :ivar name: the key in ``params`` (``"steps"``).
    :ivar label: what the form calls it: the field's ``title``, else its name
        with ``_`` as spaces, capitalised (``"Steps"``).
    :ivar whole: ``True`` for an ``int``, ``False`` for a ``float``.
    :ivar default: the value taken when it is left blank, or ``None`` if required.
    :ivar minimum: the smallest value allowed (``ge``), or ``None``.
    :ivar maximum: the largest value allowed (``le``), or ``None``.
    """

    name: str
    label: str
    whole: bool
    default: int | float | None
    minimum: int | float | None
    maximum: int | float | None


def parameters(model: type[BaseModel]) -> list[Parameter]:
    """The number parameters of the params ``model``, in its field order.

    :param model: a kind's params model (:attr:`app.tasks.kinds.TaskKind.params_model`).
    :returns: one :class:`Parameter` per ``int`` or ``float`` field; fields
        of other types (``bool``, ``str``...) have no form field: the form
        leaves them to their defaults, the JSON API sets them.
    """
    return [
        _parameter(name, field)
        for name, field in model.model_fields.items()
        if field.annotation in (int, float)
    ]


def _parameter(name: str, field: FieldInfo) -> Parameter:
    minimum = maximum = None
    for constraint in field.metadata:
        if isinstance(constraint, annotated_types.Ge):
            minimum = constraint.ge
        elif isinstance(constraint, annotated_types.Le):
            maximum = constraint.le
    default = None if field.is_required() else field.default
    return Parameter(
        name=name,
        label=field.title or name.replace("_", " ").capitalize(),
        whole=field.annotation is int,
        default=default,
        minimum=minimum,  # type: ignore[arg-type]
        maximum=maximum,  # type: ignore[arg-type]
    )
