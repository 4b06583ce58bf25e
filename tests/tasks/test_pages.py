"""The HTML pages, as a user clicks through them (WebTest, WSGI level)."""

from __future__ import annotations

import pytest
import webtest
from flask import Flask
from sqlalchemy import update

from app.extensions import db
from app.tasks.models import MAX_NOTES_PER_TASK, Task
from app.tasks.wording import NOTES_FULL
from tests.tasks.support import wait_for_final


def flashes(page: webtest.TestResponse) -> list[str]:
    """The texts of the page's flashed error messages."""
    return [p.text for p in page.html.select(".flash.error")]


def test_home_page_starts_empty(testapp: webtest.TestApp) -> None:
    page = testapp.get("/tasks")
    assert page.status_code == 200
    assert "Start a task" in page
    assert page.html.find(id="no-tasks") is not None


def test_start_a_task_from_the_form(testapp: webtest.TestApp, flask_app: Flask) -> None:
    page = testapp.get("/tasks")
    form = page.forms["new-task"]
    assert form["kind"].value == "sleep"
    form["sleep-steps"] = "3"
    form["sleep-delay"] = "0.01"
    created = form.submit()
    assert created.status_code == 302
    detail = created.follow()
    assert "Task 1 started." in detail
    assert detail.html.find("h1").text.startswith("Task 1")

    task = wait_for_final(flask_app, 1)
    assert task.status == "succeeded"
    assert task.progress == 100
    assert task.result == {"slept_seconds": 0.03}

    home = testapp.get("/tasks")
    rows = home.html.select("#tasks tbody tr")
    assert len(rows) == 1
    assert "succeeded" in rows[0].text


def test_invalid_form_says_which_field(testapp: webtest.TestApp, flask_app: Flask) -> None:
    form = testapp.get("/tasks").forms["new-task"]
    form["sleep-steps"] = "5000"
    page = form.submit(status=422)
    assert flashes(page) == ["Steps: must be a whole number from 1 to 1,000."]
    assert page.forms["new-task"]["sleep-steps"].value == "5000"  # shown again as sent
    with flask_app.app_context():
        assert db.session.query(Task).count() == 0


def test_form_without_csrf_token_is_rejected(testapp: webtest.TestApp) -> None:
    page = testapp.post("/tasks", {"kind": "sleep"}, status=400)
    assert "The CSRF token is missing." in page


def test_unknown_task_page_is_404(testapp: webtest.TestApp) -> None:
    page = testapp.get("/tasks/999", status=404)
    assert "<h1>404</h1>" in page


def test_add_notes_from_the_task_page(testapp: webtest.TestApp, flask_app: Flask) -> None:
    form = testapp.get("/tasks").forms["new-task"]
    form["sleep-steps"], form["sleep-delay"] = "1", "0"
    page = form.submit().follow()
    assert page.html.find(id="no-notes") is not None

    note_form = page.forms["new-note"]
    note_form["body"] = "first look: fine"
    page = note_form.submit().follow()
    assert "Note added." in page
    assert [li.text for li in page.html.select("#notes li")] == ["first look: fine"]

    blank = page.forms["new-note"]
    blank["body"] = "   "
    rejected = blank.submit(status=422)
    assert "Note: write 1 to 2,000 characters (not only spaces)." in rejected
    assert "String should" not in rejected
    assert testapp.get("/api/tasks/1").json["note_count"] == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("   ", "Note: write 1 to 2,000 characters (not only spaces)."),
        ("x" * 2001, "Note: write 1 to 2,000 characters (not only spaces)."),
        ("a\x00b", "Note: must not contain "),
    ],
    ids=["blank", "too-long", "control-character"],
)
def test_note_refusals_are_in_the_pages_words(
    testapp: webtest.TestApp, flask_app: Flask, body: str, message: str
) -> None:
    form = testapp.get("/tasks").forms["new-task"]
    form["sleep-steps"], form["sleep-delay"] = "1", "0"
    page = form.submit().follow()
    note_form = page.forms["new-note"]
    note_form["body"] = body
    rejected = note_form.submit(status=422)
    assert message in rejected.text
    assert "body:" not in rejected.text
    assert testapp.get("/api/tasks/1").json["note_count"] == 0


def test_a_note_past_the_cap_is_a_message_not_an_error_page(
    testapp: webtest.TestApp, flask_app: Flask
) -> None:
    form = testapp.get("/tasks").forms["new-task"]
    form["sleep-steps"], form["sleep-delay"] = "1", "0"
    page = form.submit().follow()
    wait_for_final(flask_app, 1)
    with flask_app.app_context():
        db.session.execute(update(Task).values(note_count=MAX_NOTES_PER_TASK))
        db.session.commit()
    note_form = page.forms["new-note"]
    note_form["body"] = "one too many"
    rejected = note_form.submit(status=409)
    assert NOTES_FULL in rejected.text
    assert testapp.get("/api/tasks/1").json["note_count"] == MAX_NOTES_PER_TASK


def test_the_form_passes_typed_numbers_to_strict_params(
    testapp: webtest.TestApp, flask_app: Flask
) -> None:
    """WTForms gives ``int``/``float``, which the strict params models accept as they are."""
    for kind, values in (("sleep", {"steps": "1", "delay": "0"}), ("primes", {"limit": "100"})):
        form = testapp.get("/tasks", {"kind": kind}).forms["new-task"]
        for name, value in values.items():
            form[f"{kind}-{name}"] = value
        assert form.submit().status_code == 302
    assert wait_for_final(flask_app, 1).params == {"steps": 1, "delay": 0.0}
    assert wait_for_final(flask_app, 2).result == {"count": 25, "limit": 100}


def test_stale_cancel_and_retry_buttons_are_refused_in_the_pages_words(
    testapp: webtest.TestApp, flask_app: Flask
) -> None:
    """A page loaded before the task finished still posts; the refusal is a sentence for people."""
    form = testapp.get("/tasks").forms["new-task"]
    form["sleep-steps"], form["sleep-delay"] = "1", "0"
    page = form.submit().follow()  # its buttons were for a task not yet finished
    wait_for_final(flask_app, 1)

    cancel = page.forms["cancel-task"].submit(status=409)
    assert flashes(cancel) == [
        "Task 1 has already finished (succeeded): there is nothing to cancel."
    ]
    retry = page.forms["retry-task"].submit(status=409)
    assert flashes(retry) == [
        "Task 1 has succeeded: only a failed, interrupted or cancelled task can be retried."
    ]
    # The JSON API keeps its own messages.
    api = testapp.post("/api/tasks/1/cancel", status=409)
    assert api.json == {"error": "task 1 is succeeded: nothing to cancel"}
