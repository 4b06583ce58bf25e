"""The HTML form that creates a task (Flask-WTF: CSRF-protected)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import FloatField, IntegerField, SelectField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Optional

from app.tasks.kinds import KINDS


class TaskForm(FlaskForm):
    """Kind plus the parameters of every kind; blank numbers take the kind's defaults.

    Range checks are left to :func:`app.tasks.client.validate_task`, the one
    place the API uses too.
    """

    kind = SelectField(
        "Kind", choices=[SelectChoice(k.name, k.description) for k in KINDS.values()]
    )
    steps = IntegerField("Steps (sleep)", validators=[Optional()])
    delay = FloatField("Seconds per step (sleep)", validators=[Optional()])
    limit = IntegerField("Count primes below (primes)", validators=[Optional()])

    def params(self) -> dict[str, int | float]:
        """Return the filled-in parameters that belong to the chosen kind."""
        fields = {"sleep": ("steps", "delay"), "primes": ("limit",)}[self.kind.data or "sleep"]
        return {name: self[name].data for name in fields if self[name].data is not None}


class NoteForm(FlaskForm):
    """One note on a task; length is checked by :class:`app.tasks.service.NewNote`."""

    body = TextAreaField("Note")


class TaskActionForm(FlaskForm):
    """A button that acts on a task (cancel, retry): no fields, only the CSRF token.

    The task page renders one per action with ``form.csrf_token(id=False)`` (two
    forms, one token field each, no duplicate ``id``).
    """
