"""The task form's error messages, in the words of the form (the one place that words them).

The validator (:func:`app.tasks.client.validate_task`, :data:`app.tasks.client.TaskName`)
reports problems by field path with pydantic's wording (``params.steps: Input
should be less than or equal to 1000``): right for the JSON API's 422 body,
which machines read and which stays as it is, but not for a person at the
page. Here each path becomes the form's label and what the field accepts,
read from the kind's params model (:mod:`app.tasks.parameters`), so any
problem with a field -- wrong type, out of range -- gets the same sentence::

    Steps: must be a whole number from 1 to 1000.

The form's own checks (WTForms: a number that is not one) arrive as the same
paths (:meth:`app.tasks.forms.TaskForm.problems`) and get the same sentences.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from app.tasks.kinds import KINDS
from app.tasks.models import (
    MAX_NOTES_PER_TASK,
    NAME_MAX_LENGTH,
    NOTE_MAX_LENGTH,
    RETRYABLE_STATUSES,
    TaskStatus,
)
from app.tasks.parameters import Parameter, parameters

NAME_LABEL = "Name"
"""The form's label of the task name."""

NOTE_LABEL = "Note"
"""The note form's label (the task page)."""

EXPIRED = "The form expired; reload the page and try again."
"""The message for a missing or stale CSRF token (as the task page's buttons say it)."""

CONTROL_CHARACTER = "must not contain "
"""How :func:`app.validation.plain_text`'s message starts (it names the character)."""


def describe(parameter: Parameter) -> str:
    """What ``parameter`` accepts, as the end of a sentence.

    :param parameter: a kind's parameter.
    :returns: e.g. ``"must be a whole number from 1 to 1000"`` or ``"must be
        a number of at least 0"``.
    """
    noun = "a whole number" if parameter.whole else "a number"
    low, high = parameter.minimum, parameter.maximum
    if low is not None and high is not None:
        return f"must be {noun} from {_number(low)} to {_number(high)}"
    if low is not None:
        return f"must be {noun} of at least {_number(low)}"
    if high is not None:
        return f"must be {noun} of at most {_number(high)}"
    return f"must be {noun}"


def sentence(kind: str | None, path: str, message: str) -> str:
    """One problem as the page shows it.

    :param kind: the kind the form was sent for (its parameters are looked up there).
    :param path: the field path, as :class:`app.validation.InvalidInput` names
        it: ``"kind"``, ``"name"``, ``"params.<parameter>"``, ``"csrf_token"``.
    :param message: the validator's message (kept only where it is already in
        the user's words: a control character in the name, and paths the form
        cannot produce, such as an unknown parameter).
    :returns: e.g. ``"Steps: must be a whole number from 1 to 1000."``.
    """
    if path == "csrf_token":
        return EXPIRED
    if path == "kind":
        names = ", ".join(f"“{k.description}”" for k in KINDS.values())
        return f"Kind: choose one of {names}."
    if path == "name":
        if message.startswith(CONTROL_CHARACTER):
            return f"{NAME_LABEL}: {message}."
        return (
            f"{NAME_LABEL}: leave it empty for none, or give 1 to {NAME_MAX_LENGTH} "
            "characters (not only spaces)."
        )
    task_kind = KINDS.get(kind or "")
    if task_kind is not None and path.startswith("params."):
        by_name = {p.name: p for p in parameters(task_kind.params_model)}
        parameter = by_name.get(path.removeprefix("params."))
        if parameter is not None:
            return f"{parameter.label}: {describe(parameter)}."
    return f"{path}: {message}"


def sentences(kind: str | None, problems: Mapping[str, str | Iterable[str]]) -> list[str]:
    """Every problem as the page shows it, one sentence per field (duplicates dropped).

    :param kind: the kind the form was sent for.
    :param problems: messages by field path (:attr:`app.validation.InvalidInput.fields`,
        or several messages a field as :meth:`app.tasks.forms.TaskForm.problems` gives).
    """
    said: list[str] = []
    for path, messages in problems.items():
        for message in [messages] if isinstance(messages, str) else messages:
            text = sentence(kind, path, message)
            if text not in said:
                said.append(text)
    return said


def name_taken(name: str) -> str:
    """The message for a name another task has.

    :param name: the name as stored (stripped).
    """
    return f"{NAME_LABEL}: a task named “{name}” already exists; choose another name."


def _number(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def note_sentence(path: str, message: str) -> str:
    """A problem with the note form (the task page), as the page shows it.

    :param path: the field path (``"body"``, ``"csrf_token"``), as
        :class:`app.validation.InvalidInput` names it.
    :param message: the validator's message (kept only for a control character,
        which it names).
    :returns: e.g. ``"Note: write 1 to 2,000 characters (not only spaces)."``.
    """
    if path == "csrf_token":
        return EXPIRED
    if message.startswith(CONTROL_CHARACTER):
        return f"{NOTE_LABEL}: {message}."
    return f"{NOTE_LABEL}: write 1 to {NOTE_MAX_LENGTH:,} characters (not only spaces)."


NOTES_FULL = (
    f"{NOTE_LABEL}: this task already has {MAX_NOTES_PER_TASK:,} notes, the most it can have."
)
"""The message for a note past :data:`app.tasks.models.MAX_NOTES_PER_TASK`."""


def cancel_refused(task_id: int, status: str) -> str:
    """The page's message for *Cancel* on a task that has already finished (a stale page).

    :param task_id: the task.
    :param status: its status now (a :class:`~app.tasks.models.TaskStatus` value).
    :returns: e.g. ``"Task 1 has already finished (succeeded): there is nothing to cancel."``.
    """
    return f"Task {task_id} has already finished ({status}): there is nothing to cancel."


def retry_refused(task_id: int, status: str, kind: str) -> str:
    """The page's message for *Retry* the task's state or kind does not allow (a stale page).

    :param task_id: the task.
    :param status: its status now (a :class:`~app.tasks.models.TaskStatus` value).
    :param kind: its kind's name (a retryable task is refused only when its
        kind is no longer in :data:`app.tasks.kinds.KINDS`).
    :returns: e.g. ``"Task 1 is running: only a failed, interrupted or
        cancelled task can be retried."``.
    """
    if status in RETRYABLE_STATUSES:
        return f"Task {task_id} cannot be retried: its kind “{kind}” no longer exists."
    retryable = [s.value for s in TaskStatus if s in RETRYABLE_STATUSES]
    allowed = f"{', '.join(retryable[:-1])} or {retryable[-1]}"
    state = "is" if status in (TaskStatus.QUEUED, TaskStatus.RUNNING) else "has"
    return f"Task {task_id} {state} {status}: only a {allowed} task can be retried."
