"""HTML pages: the task list with its creation form, and one task's page.

The task page has a *Cancel* button (for a queued or running task) and a
*Retry* button (failed, interrupted or cancelled), small CSRF-protected POST
forms (:class:`app.tasks.forms.TaskActionForm`) that act through the task
API (:mod:`app.tasks.client`). Errors are flashed on the page, never a 500: a
conflict (the task moved on meanwhile) is 409, the queue being down (the
queue backend's Redis) 503 with ``Retry-After``, also when starting a task.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_wtf import FlaskForm
from sqlalchemy.exc import IntegrityError
from werkzeug.wrappers import Response

from app.extensions import db
from app.tasks.client import TaskBackendUnavailable, TaskStateConflict, task_client
from app.tasks.forms import NoteForm, TaskActionForm, TaskForm, task_form
from app.tasks.models import RETRYABLE_STATUSES, Task, TaskStatus
from app.tasks.service import (
    add_note,
    count_by_status,
    create_task,
    list_tasks,
    use_task_id_converter,
)
from app.tasks.wording import (
    NOTES_FULL,
    cancel_refused,
    name_taken,
    note_sentence,
    retry_refused,
    sentences,
)
from app.validation import InvalidInput

blueprint = Blueprint(
    "tasks",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static/tasks",
)
blueprint.record_once(use_task_id_converter)  # before the rules that use <task_id:...>

CANCELLABLE_STATUSES = frozenset({TaskStatus.QUEUED, TaskStatus.RUNNING})
"""Statuses whose task page offers *Cancel* (:meth:`app.tasks.client.TaskClient.cancel`)."""


@blueprint.app_template_global()
def task_actions() -> dict[str, list[str]]:
    """The statuses that enable each button of the task page (read by its script too)."""
    return {"cancel": sorted(CANCELLABLE_STATUSES), "retry": sorted(RETRYABLE_STATUSES)}


@blueprint.app_template_global()
def recent_tasks_limit() -> int:
    """How many rows the task list shows (:data:`app.tasks.service.RECENT_TASKS`, read
    per call); its script keeps the live list at that length."""
    from app.tasks import service  # the attribute, read per call (a test may change it)

    return service.RECENT_TASKS


@blueprint.get("/tasks")
def index() -> str:
    """The task list: recent tasks, counts by status, and the form to start one.

    ``?kind=primes`` shows the form with that kind's fields (how the kind is
    chosen without JavaScript: :class:`app.tasks.forms.TaskForm`).
    """
    return index_page(task_form(request.args.get("kind")))


def index_page(form: TaskForm) -> str:
    """Render the task list with ``form`` (empty, or as sent with its errors)."""
    return render_template(
        "tasks/index.html", form=form, tasks=list_tasks(), counts=count_by_status()
    )


@blueprint.post("/tasks")
def create() -> Response | tuple[str, int] | tuple[str, int, dict[str, str]]:
    """Create a task from the form; on success redirect to its page.

    Every refusal is flashed in the form's words (:mod:`app.tasks.wording`),
    the form shown again as sent: 422 for a field's value or the CSRF token,
    409 for a name another task has (the database's unique constraint, so two
    people racing for one name get one task and one message, not a 500).
    """
    form = task_form()
    kind = form.kind.data
    problems: Mapping[str, str | list[str]] = {}
    status = 422
    if not form.validate_on_submit():
        problems = form.problems()
    else:
        name = form.task_name()
        try:
            task = create_task(kind, form.params(), name)
        except InvalidInput as error:
            problems = error.fields
        except IntegrityError:
            if name is None:
                raise
            flash(name_taken(name.strip()), "error")
            status = 409
        except TaskBackendUnavailable as error:
            flash(str(error), "error")
            return index_page(form), 503, {"Retry-After": str(error.retry_after)}
        else:
            flash(f"Task {task.id} started.", "success")
            return redirect(url_for("tasks.detail", task_id=task.id))
    for message in sentences(kind, problems):
        flash(message, "error")
    return index_page(form), status


@blueprint.get("/tasks/<task_id:task_id>")
def detail(task_id: int) -> str:
    """One task's page; its progress bar is kept live over the native WebSocket."""
    return detail_page(task_id)


def detail_page(task_id: int, form: FlaskForm | None = None) -> str:
    """Render task ``task_id``'s page (404 if there is none).

    :param form: the note form to show (with its errors), default an empty one.
    """
    task = db.session.get(Task, task_id) or abort(404)
    return render_template(
        "tasks/detail.html", task=task, form=form or NoteForm(), actions=TaskActionForm()
    )


@blueprint.post("/tasks/<task_id:task_id>/notes")
def add_note_form(task_id: int) -> Response | tuple[str, int]:
    """Add a note from the task page; on success back to the page."""
    form = NoteForm()
    try:
        if not form.validate_on_submit():
            raise InvalidInput({name: "; ".join(errors) for name, errors in form.errors.items()})
        add_note(db.session, task_id, {"body": form.body.data})
        db.session.commit()
    except InvalidInput as error:
        db.session.rollback()
        for field, message in error.fields.items():
            flash(note_sentence(field, message), "error")
        return detail_page(task_id, form), 422
    except IntegrityError:  # the notes cap (a CHECK constraint): the one the page can hit
        db.session.rollback()
        flash(NOTES_FULL, "error")
        return detail_page(task_id, form), 409
    flash("Note added.", "success")
    return redirect(url_for("tasks.detail", task_id=task_id))


@blueprint.post("/tasks/<task_id:task_id>/cancel")
def cancel(task_id: int) -> Response | tuple[str, int, dict[str, str]]:
    """Cancel the task from its page's *Cancel* button; back to the page with a message."""
    return act_on_task(
        task_id,
        task_client(current_app).cancel,
        cancelled_message,
        lambda task: cancel_refused(task.id, task.status),
    )


def cancelled_message(task: dict[str, Any]) -> str:
    """The message after a cancel: done, or asked of a running task (it stops at its next report).

    :param task: the task as :meth:`~app.tasks.client.TaskClient.cancel` returned it.
    """
    if task["status"] == TaskStatus.CANCELLED:
        return f"Task {task['id']} cancelled."
    return f"Task {task['id']} will stop at its next progress report."


@blueprint.post("/tasks/<task_id:task_id>/retry")
def retry(task_id: int) -> Response | tuple[str, int, dict[str, str]]:
    """Queue the task again from its page's *Retry* button; back to the page with a message."""
    return act_on_task(
        task_id,
        task_client(current_app).retry,
        lambda task: f"Task {task['id']} queued again.",
        lambda task: retry_refused(task.id, task.status, task.kind),
    )


def act_on_task(
    task_id: int,
    action: Callable[[int], dict[str, Any]],
    message: Callable[[dict[str, Any]], str],
    refused: Callable[[Task], str],
) -> Response | tuple[str, int, dict[str, str]]:
    """Run ``action(task_id)`` for a button of the task page, after checking its CSRF token.

    On success, flash ``message(task)`` and redirect to the page
    (303, so a reload does not post again). Otherwise the page again with the
    reason flashed: 400 for a form without a valid CSRF token (when global
    CSRF protection is off), 409 when the task's state does not allow it, 503
    with ``Retry-After`` when the queue is down. 404 for an unknown task.

    :param task_id: the task.
    :param action: :meth:`~app.tasks.client.TaskClient.cancel` or ``retry``.
    :param message: the success message for the task ``action`` returned.
    :param refused: the message when the task's state does not allow the
        action (:mod:`app.tasks.wording`), for the task as it is now; the
        JSON API keeps :class:`~app.tasks.client.TaskStateConflict`'s own.
    """
    headers: dict[str, str] = {}
    if not TaskActionForm().validate_on_submit():
        flash("The form expired; reload the page and try again.", "error")
        status = 400
    else:
        try:
            task = action(task_id)
        except TaskStateConflict as error:
            task_now = db.session.get(Task, task_id, populate_existing=True)
            flash(refused(task_now) if task_now is not None else str(error), "error")
            status = 409
        except TaskBackendUnavailable as error:
            flash(str(error), "error")
            status = 503
            headers["Retry-After"] = str(error.retry_after)
        else:
            flash(message(task), "success")
            return redirect(url_for("tasks.detail", task_id=task_id), 303)
    return detail_page(task_id), status, headers
