"""The HTML forms of the task pages (Flask-WTF: CSRF-protected)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    Field,
    FloatField,
    Form,
    FormField,
    HiddenField,
    IntegerField,
    StringField,
    TextAreaField,
)
from wtforms.validators import Optional, ValidationError

from app.tasks.kinds import KINDS, TaskKind
from app.tasks.models import NAME_MAX_LENGTH
from app.tasks.parameters import Parameter, parameters


class TaskForm(FlaskForm):
    """Start a task: its kind, an optional name, and the chosen kind's parameters.

    Built per request by :func:`task_form` from :data:`app.tasks.kinds.KINDS`
    (one :class:`~wtforms.FormField` per kind, :func:`params_field`, whose
    inputs are ``<kind>-<parameter>``: ``sleep-steps``, ``primes-limit``); a
    new kind needs no edits here or in the template.

    The page is usable without JavaScript: the kind is chosen first, in a
    separate ``GET`` form (``/tasks?kind=primes``) that renders this form
    with that kind in its hidden ``kind`` field and only that kind's
    fieldset shown and enabled (the others are ``hidden disabled``, so the
    browser neither shows nor sends them). So the kind sent is always the one
    whose fields the person filled in. With JavaScript
    (``static/task-form.js``) choosing a kind switches the fieldsets and the
    hidden field at once, without a reload.

    Blank numbers take the kind's defaults (shown as placeholders); the
    ranges are checked by :func:`app.tasks.client.validate_task`, the one
    place the API uses too (the inputs carry ``min``/``max`` as a hint).
    """

    kind = HiddenField()
    name = StringField(
        "Name (optional)", render_kw={"maxlength": NAME_MAX_LENGTH, "autocomplete": "off"}
    )

    def kinds(self) -> list[TaskKind]:
        """The kinds the form offers, in :data:`~app.tasks.kinds.KINDS` order."""
        return [kind for kind in KINDS.values() if params_field(kind.name) in self]

    def fieldsets(self) -> Iterator[tuple[TaskKind, list[Field]]]:
        """Each kind with its parameters' fields, for the template to render one fieldset each."""
        for kind in self.kinds():
            yield kind, list(self[params_field(kind.name)])

    def task_name(self) -> str | None:
        """The name typed in, or ``None`` if left empty (spaces alone are refused later)."""
        return self.name.data or None

    def params(self) -> dict[str, Any]:
        """Return the filled-in parameters of the chosen kind (none if the kind is unknown)."""
        chosen = params_field(self.kind.data or "")
        if chosen not in self:
            return {}
        fields = self[chosen]
        return {name: value for name, value in fields.data.items() if value is not None}

    def validate(self, extra_validators: Any = None) -> bool:
        """Validate the CSRF token, the kind, the name and the chosen kind's fields only.

        The other kinds' fields are not sent (their fieldsets are disabled), so
        nothing about them can be wrong.

        :param extra_validators: more validators by field name, as
            :meth:`wtforms.Form.validate` takes them (inline ``validate_<field>``
            methods are not looked up: this form has none).
        :returns: whether those fields are valid; their errors are in :attr:`errors`.
        """
        self._errors = None
        checked = {"csrf_token", "kind", "name", params_field(self.kind.data or "")}
        extra = extra_validators or {}
        return all(
            [
                field.validate(self, extra.get(name, ()))
                for name, field in self._fields.items()
                if name in checked
            ]
        )

    def problems(self) -> dict[str, list[str]]:
        """The form's errors by the paths :class:`app.validation.InvalidInput` uses.

        ``{"sleep": {"steps": [...]}}`` becomes ``{"params.steps": [...]}``,
        so :func:`app.tasks.wording.sentences` words both the same way.
        """
        found: dict[str, list[str]] = {}
        for name, errors in self.errors.items():
            if isinstance(errors, dict):
                for parameter, messages in errors.items():
                    found[f"params.{parameter}"] = list(messages)
            else:
                found[name] = list(errors)
        return found


def task_form(kind: str | None = None) -> TaskForm:
    """A :class:`TaskForm` for the kinds in :data:`~app.tasks.kinds.KINDS`, filled from the request.

    :param kind: the kind to show when the request sends none (``?kind=`` of
        the page); an unknown one, or ``None``, is the first kind.
    """
    fields = {
        params_field(name): FormField(kind_fields(task_kind), name=name)
        for name, task_kind in KINDS.items()
    }
    form_class = type("TaskForm", (TaskForm,), fields)
    form: TaskForm = form_class(kind=kind if kind in KINDS else next(iter(KINDS)))
    return form


def params_field(kind: str) -> str:
    """The attribute of :class:`TaskForm` holding ``kind``'s fields (``params_sleep``).

    Its inputs are still named after the kind alone (``sleep-steps``); the
    prefix keeps a kind called ``name`` or ``kind`` off the form's own fields.
    """
    return f"params_{kind}"


def kind_fields(kind: TaskKind) -> type[Form]:
    """The form of one kind's parameters: a number field per parameter, blank for the default.

    :param kind: the kind; its fields come from :func:`app.tasks.parameters.parameters`.
    """
    fields = {p.name: number_field(p) for p in parameters(kind.params_model)}
    return type(f"{kind.name.capitalize()}Fields", (Form,), fields)


def number_field(parameter: Parameter) -> Field:
    """An ``<input type=number>`` for ``parameter``: default as placeholder, bounds as hints.

    :param parameter: the parameter.
    """
    hints: dict[str, Any] = {"step": 1 if parameter.whole else "any"}
    if parameter.default is not None:
        hints["placeholder"] = parameter.default
    if parameter.minimum is not None:
        hints["min"] = parameter.minimum
    if parameter.maximum is not None:
        hints["max"] = parameter.maximum
    field_class = IntegerField if parameter.whole else FloatField
    field: Field = field_class(parameter.label, validators=[Optional(), finite], render_kw=hints)
    return field


def finite(form: Form, field: Field) -> None:
    """Refuse a number that is not finite (``nan``, ``inf``, ``-inf``, ``1e400``).

    Python's :class:`float` parses them, so :class:`~wtforms.FloatField`
    accepts them, but no parameter range holds them and JSON (the stored
    parameters) cannot carry them. Refused here, they are the field's own
    error, worded like any other by :mod:`app.tasks.wording`.

    :param form: the form (a WTForms validator's first argument; unused).
    :param field: the number field; ``field.data`` is a number or ``None``.
    :raises wtforms.validators.ValidationError: if the number is not finite.
    """
    if isinstance(field.data, float) and not math.isfinite(field.data):
        raise ValidationError("Not a finite number.")


class NoteForm(FlaskForm):
    """One note on a task; length is checked by :class:`app.tasks.service.NewNote`."""

    body = TextAreaField("Note")


class TaskActionForm(FlaskForm):
    """A button that acts on a task (cancel, retry): no fields, only the CSRF token.

    The task page renders one per action with ``form.csrf_token(id=False)`` (two
    forms, one token field each, no duplicate ``id``).
    """
