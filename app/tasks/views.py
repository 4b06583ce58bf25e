"""HTML pages: the task list with its creation form, and one task's page."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from werkzeug.wrappers import Response

from app.extensions import db
from app.tasks.forms import NoteForm, TaskForm
from app.tasks.models import Task
from app.tasks.service import (
    add_note,
    count_by_status,
    create_task,
    list_tasks,
    use_task_id_converter,
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


@blueprint.get("/tasks")
def index() -> str:
    """The task list: recent tasks, counts by status, and the form to start one."""
    return render_template(
        "tasks/index.html", form=TaskForm(), tasks=list_tasks(), counts=count_by_status()
    )


@blueprint.post("/tasks")
def create() -> Response | tuple[str, int]:
    """Create a task from the form; on success redirect to its page."""
    form = TaskForm()
    if form.validate_on_submit():
        try:
            task = create_task(form.kind.data, form.params())
        except InvalidInput as error:
            for field, message in error.fields.items():
                flash(f"{field}: {message}", "error")
        else:
            flash(f"Task {task.id} started.", "success")
            return redirect(url_for("tasks.detail", task_id=task.id))
    for field, messages in form.errors.items():
        for message in messages:
            flash(f"{field}: {message}", "error")
    page = render_template(
        "tasks/index.html", form=form, tasks=list_tasks(), counts=count_by_status()
    )
    return page, 422


@blueprint.get("/tasks/<task_id:task_id>")
def detail(task_id: int) -> str:
    """One task's page; its progress bar is kept live over the native WebSocket."""
    task = db.session.get(Task, task_id) or abort(404)
    return render_template("tasks/detail.html", task=task, form=NoteForm())


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
            flash(f"{field}: {message}", "error")
        task = db.session.get(Task, task_id) or abort(404)
        return render_template("tasks/detail.html", task=task, form=form), 422
    flash("Note added.", "success")
    return redirect(url_for("tasks.detail", task_id=task_id))
