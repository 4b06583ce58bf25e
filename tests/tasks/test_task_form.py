"""The "Start a task" form as a person uses it (WebTest, WSGI level): kinds, name, messages.

What the browser does with the form (JavaScript or none) is in
``test_task_form_browser.py``; this covers what the server renders and says.
"""

from __future__ import annotations

import threading

import httpx
import pytest
import webtest
from flask import Flask
from pydantic import BaseModel, ConfigDict, Field

from app.extensions import db
from app.tasks import kinds
from app.tasks.models import Task
from tests.support.login import csrf_token
from tests.support.server import ServerFactory
from tests.tasks.support import wait_for_final

NAME_RULE = "Name: leave it empty for none, or give 1 to 100 characters (not only spaces)."


def flashes(page: webtest.TestResponse) -> list[str]:
    """The texts of the page's flashed error messages."""
    return [p.text for p in page.html.select(".flash.error")]


def shown_fieldsets(page: webtest.TestResponse) -> list[str]:
    """The kinds whose fieldset the page shows (neither ``hidden`` nor ``disabled``)."""
    return [
        fieldset["data-kind"]
        for fieldset in page.html.select("#new-task fieldset[data-kind]")
        if not fieldset.has_attr("hidden") and not fieldset.has_attr("disabled")
    ]


def row_count(flask_app: Flask) -> int:
    """How many tasks the database holds."""
    with flask_app.app_context():
        return db.session.query(Task).count()


@pytest.mark.parametrize(
    ("kind", "fields", "message"),
    [
        ("sleep", {"sleep-steps": "5000"}, "Steps: must be a whole number from 1 to 1,000."),
        ("sleep", {"sleep-steps": "0"}, "Steps: must be a whole number from 1 to 1,000."),
        ("sleep", {"sleep-steps": "ten"}, "Steps: must be a whole number from 1 to 1,000."),
        ("sleep", {"sleep-steps": "2.5"}, "Steps: must be a whole number from 1 to 1,000."),
        ("sleep", {"sleep-delay": "10.5"}, "Seconds per step: must be a number from 0 to 10."),
        ("sleep", {"sleep-delay": "soon"}, "Seconds per step: must be a number from 0 to 10."),
        ("sleep", {"sleep-delay": "nan"}, "Seconds per step: must be a number from 0 to 10."),
        ("sleep", {"sleep-delay": "inf"}, "Seconds per step: must be a number from 0 to 10."),
        ("sleep", {"sleep-delay": "-inf"}, "Seconds per step: must be a number from 0 to 10."),
        ("sleep", {"sleep-delay": "1e400"}, "Seconds per step: must be a number from 0 to 10."),
        (
            "primes",
            {"primes-limit": "1"},
            "Count primes below: must be a whole number from 2 to 50,000,000.",
        ),
        ("sleep", {"name": "   "}, NAME_RULE),
        ("sleep", {"name": "x" * 101}, NAME_RULE),
        (
            "sleep",
            {"name": "bell\x07"},
            "Name: must not contain U+0007: only printable text, tabs and newlines.",
        ),
        (
            "sleep",
            {"kind": "nosuchkind"},
            "Kind: choose one of “Sleep in steps (slow I/O stand-in)”, "
            "“Count primes below a limit (CPU)”.",
        ),
    ],
    ids=[
        "too-many",
        "too-few",
        "not-a-number",
        "not-whole",
        "too-long-a-delay",
        "delay-not-a-number",
        "delay-nan",
        "delay-infinite",
        "delay-minus-infinite",
        "delay-overflowing",
        "limit-too-small",
        "blank-name",
        "name-too-long",
        "control-character",
        "unknown-kind",
    ],
)
def test_each_refusal_is_flashed_in_the_forms_words(
    testapp: webtest.TestApp,
    flask_app: Flask,
    kind: str,
    fields: dict[str, str],
    message: str,
) -> None:
    form = testapp.get("/tasks", {"kind": kind}).forms["new-task"]
    for name, value in fields.items():
        form[name] = value
    page = form.submit(status=422)
    assert flashes(page) == [message]
    assert row_count(flask_app) == 0


def test_the_json_api_keeps_its_machine_readable_422(testapp: webtest.TestApp) -> None:
    """Only the page's wording changed: the API still names pydantic's paths and messages."""
    steps = testapp.post_json(
        "/api/tasks", {"kind": "sleep", "params": {"steps": 5000}}, status=422
    )
    assert steps.json["fields"] == {"params.steps": "Input should be less than or equal to 1000"}
    name = testapp.post_json("/api/tasks", {"kind": "sleep", "name": " "}, status=422)
    assert name.json["fields"] == {"name": "String should have at least 1 character"}


def test_the_name_set_in_the_form_is_stored_and_shown(
    testapp: webtest.TestApp, flask_app: Flask
) -> None:
    form = testapp.get("/tasks").forms["new-task"]
    form["name"] = "  nightly report  "
    form["sleep-steps"], form["sleep-delay"] = "1", "0"
    page = form.submit(status=302).follow()
    assert page.html.find(id="task-name").text == "nightly report"
    assert page.html.find("h1").text.startswith("Task 1: nightly report")
    assert page.html.find("title").text.startswith("Task 1: nightly report")
    assert wait_for_final(flask_app, 1).name == "nightly report"


def test_a_name_left_empty_is_no_name(testapp: webtest.TestApp, flask_app: Flask) -> None:
    form = testapp.get("/tasks").forms["new-task"]
    form["sleep-steps"], form["sleep-delay"] = "1", "0"
    page = form.submit(status=302).follow()
    assert page.html.find(id="task-name") is None
    assert wait_for_final(flask_app, 1).name is None


def test_a_duplicate_name_is_a_message_not_a_500(
    testapp: webtest.TestApp, flask_app: Flask
) -> None:
    testapp.post_json("/api/tasks", {"kind": "sleep", "params": {"steps": 1}, "name": "daily"})
    form = testapp.get("/tasks").forms["new-task"]
    form["name"] = " daily "
    page = form.submit(status=409)
    assert flashes(page) == ["Name: a task named “daily” already exists; choose another name."]
    assert page.forms["new-task"]["name"].value == " daily "  # shown again as sent
    assert row_count(flask_app) == 1


def test_two_people_racing_for_one_name_get_one_task_and_one_message(
    live_server: ServerFactory,
) -> None:
    """Over real HTTP, both forms sent at once: the database's unique name decides."""
    server = live_server()
    start = threading.Barrier(2, timeout=30)
    answers: list[httpx.Response] = []

    def submit() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as person:
            token = csrf_token(person.get("/tasks").text)
            form = {"csrf_token": token, "kind": "sleep", "name": "the one", "sleep-steps": "1"}
            start.wait()
            answers.append(person.post("/tasks", data=form))

    people = [threading.Thread(target=submit) for _ in range(2)]
    for person in people:
        person.start()
    for person in people:
        person.join(60)
    assert sorted(answer.status_code for answer in answers) == [302, 409]
    refused = next(answer for answer in answers if answer.status_code == 409)
    assert "Name: a task named “the one” already exists; choose another name." in refused.text
    assert row_count(server.hybrid.flask_app) == 1


def test_the_page_shows_only_the_chosen_kinds_fields(testapp: webtest.TestApp) -> None:
    """Without JavaScript the kind is chosen first: ``?kind=`` renders its fieldset alone."""
    default = testapp.get("/tasks")
    assert shown_fieldsets(default) == ["sleep"]
    assert default.forms["new-task"]["kind"].value == "sleep"
    chooser = default.forms["choose-kind"]
    assert chooser.method.lower() == "get"
    chooser["kind"] = "primes"
    primes = chooser.submit()
    assert shown_fieldsets(primes) == ["primes"]
    assert primes.forms["new-task"]["kind"].value == "primes"
    assert primes.html.select_one("#kind-choice option[selected]")["value"] == "primes"
    limit = primes.html.find("input", attrs={"name": "primes-limit"})
    assert (limit["type"], limit["min"], limit["max"], limit["placeholder"]) == (
        "number",
        "2",
        "50000000",
        "1000000",
    )
    assert shown_fieldsets(testapp.get("/tasks", {"kind": "nosuchkind"})) == ["sleep"]


class Greeting(BaseModel):
    """A kind only this test knows: two numbers, one whole and bounded, one free."""

    model_config = ConfigDict(extra="forbid", strict=True)
    times: int = Field(1, ge=1, le=3, title="Times")
    pitch: float = 440.0


def test_a_new_kind_gets_its_fieldset_without_template_edits(
    testapp: webtest.TestApp, flask_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run(params: Greeting, report: kinds.Report) -> dict[str, object]:
        report(100)
        return {"said": "hello " * params.times, "pitch": params.pitch}

    monkeypatch.setitem(kinds.KINDS, "greet", kinds.TaskKind("greet", Greeting, run, "Say hello"))
    page = testapp.get("/tasks", {"kind": "greet"})
    assert shown_fieldsets(page) == ["greet"]
    labels = [label.text.strip() for label in page.html.select("fieldset[data-kind=greet] label")]
    assert labels == ["Times", "Pitch"]

    form = page.forms["new-task"]
    form["greet-times"] = "4"
    refused = form.submit(status=422)
    assert flashes(refused) == ["Times: must be a whole number from 1 to 3."]
    form = refused.forms["new-task"]
    form["greet-times"], form["greet-pitch"] = "2", "442.5"
    form.submit(status=302)
    assert wait_for_final(flask_app, 1).result == {"said": "hello hello ", "pitch": 442.5}


def test_a_kind_called_name_leaves_the_name_field_alone(
    testapp: webtest.TestApp, flask_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run(params: Greeting, report: kinds.Report) -> dict[str, object]:
        return {"times": params.times}

    monkeypatch.setitem(kinds.KINDS, "name", kinds.TaskKind("name", Greeting, run, "Say a name"))
    form = testapp.get("/tasks", {"kind": "name"}).forms["new-task"]
    form["name"], form["name-times"] = "called name", "3"
    form.submit(status=302)
    task = wait_for_final(flask_app, 1)
    assert (task.kind, task.name, task.result) == ("name", "called name", {"times": 3})


def test_a_percentage_beside_each_progress_bar(testapp: webtest.TestApp, flask_app: Flask) -> None:
    testapp.post_json("/api/tasks", {"kind": "sleep", "params": {"steps": 1, "delay": 0}})
    wait_for_final(flask_app, 1)
    for url in ("/tasks/1", "/tasks"):
        page = testapp.get(url)
        percent = page.html.select_one('[data-percent="1"]')
        assert percent is not None, url
        assert percent.text == "100%"
