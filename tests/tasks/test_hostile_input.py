"""Hostile input never gives a 5xx, and both sides refuse it alike (issue 15).

Real HTTP to the live hybrid server: every body goes to the Flask route and to
its native twin (``POST /api/tasks`` and ``/api/v2/tasks``; ``POST
/api/tasks/<id>/notes`` and ``/api/v2/tasks/<id>/notes``), on this run's
database (SQLite, or PostgreSQL with ``TEST_DATABASE_URL``). One test per
kind of input -- too deep, control characters, too wide, and the smaller
edges -- then a property-based test (Hypothesis) with generated documents.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from flask import Flask
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from app.tasks.client import task_client
from app.validation import MAX_JSON_BODY, MAX_JSON_DEPTH, MAX_REPORTED_ERRORS, InvalidInput
from tests.support.server import LiveServer, ServerFactory

JSON = {"Content-Type": "application/json"}

TASK_ROUTES = {"flask": "/api/tasks", "native": "/api/v2/tasks"}
"""Where each side enqueues a task."""


@dataclass
class Sides:
    """A live server, an HTTP client on it and one task per side to write notes on."""

    server: LiveServer
    client: httpx.Client
    note_routes: dict[str, str]

    def post(self, path: str, body: bytes | str, **headers: str) -> httpx.Response:
        """``POST`` the raw ``body`` as JSON."""
        return self.client.post(path, content=body, headers={**JSON, **headers})

    def post_task(self, body: bytes | str, **headers: str) -> dict[str, httpx.Response]:
        """``POST`` ``body`` to both task routes; the responses by side."""
        return {side: self.post(path, body, **headers) for side, path in TASK_ROUTES.items()}

    def post_note(self, body: bytes | str) -> dict[str, httpx.Response]:
        """``POST`` ``body`` to both notes routes; the responses by side."""
        return {side: self.post(path, body) for side, path in self.note_routes.items()}


@pytest.fixture
def sides(live_server: ServerFactory) -> Iterator[Sides]:
    """The live server with a task for each side's notes (so each side has its own notes cap)."""
    server = live_server()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        ids = []
        for _side in TASK_ROUTES:
            created = client.post("/api/tasks", json={"kind": "sleep", "params": {"steps": 1}})
            assert created.status_code == 201, created.text
            ids.append(created.json()["id"])
        routes = {"flask": f"/api/tasks/{ids[0]}/notes", "native": f"/api/v2/tasks/{ids[1]}/notes"}
        yield Sides(server, client, routes)


def nested(depth: int, leaf: str = "1") -> str:
    """JSON text: ``leaf`` inside ``depth`` arrays, e.g. ``[[1]]`` for 2."""
    return "[" * depth + leaf + "]" * depth


# -- 1. deeply nested JSON: 400 with a clear message, on both sides, never a RecursionError


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 100_000])
@pytest.mark.parametrize(
    "template",
    ['{"kind": "sleep", "params": {"a": NEST}}', '{"kind": "sleep", "params": NEST}', "NEST"],
)
def test_deep_json_in_a_task_is_a_400_on_both_sides(
    sides: Sides, template: str, depth: int
) -> None:
    for side, response in sides.post_task(template.replace("NEST", nested(depth))).items():
        assert response.status_code == 400, (side, response.text)
        message = response.json()["error"]
        assert "levels deep" in message and f"at most {MAX_JSON_DEPTH}" in message, message


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 100_000])
def test_deep_json_in_a_note_is_a_400_on_both_sides(sides: Sides, depth: int) -> None:
    for side, response in sides.post_note('{"body": ' + nested(depth) + "}").items():
        assert response.status_code == 400, (side, response.text)
        assert f"at most {MAX_JSON_DEPTH} are accepted" in response.json()["error"]


def test_json_at_the_depth_limit_is_read(sides: Sides) -> None:
    # {"kind", "params": {"a": [[...]]}}: the two objects and MAX_JSON_DEPTH - 2 arrays.
    body = '{"kind": "sleep", "params": {"a": ' + nested(MAX_JSON_DEPTH - 2) + "}}"
    for side, response in sides.post_task(body).items():
        assert response.status_code == 422, (side, response.text)  # read, then refused: extra key
        assert response.json()["fields"] == {"params.a": "Extra inputs are not permitted"}


def test_brackets_inside_strings_do_not_count(sides: Sides) -> None:
    body = json.dumps({"body": "[" * 1000 + '\\"{'})
    for side, response in sides.post_note(body).items():
        assert response.status_code == 201, (side, response.text)


def test_deep_params_from_python_are_refused_before_serialising(flask_app: Flask) -> None:
    params: Any = 1
    for _ in range(5000):  # deeper than json.dumps recurses
        params = [params]
    with pytest.raises(InvalidInput) as refused:
        task_client(flask_app).enqueue("sleep", {"steps": params})
    assert f"more than {MAX_JSON_DEPTH} levels deep" in refused.value.fields["params"]


# -- 2. control characters in a name or a note: 422 naming the field, on every database


@pytest.mark.parametrize("character", ["\x00", "\x1b", "\r", "\x7f", "\x9b"])
def test_control_characters_in_a_task_name_are_a_422(sides: Sides, character: str) -> None:
    body = json.dumps({"kind": "sleep", "params": {"steps": 1}, "name": f"a{character}b"})
    for side, response in sides.post_task(body).items():
        assert response.status_code == 422, (side, response.text)
        assert response.json()["fields"] == {
            "name": f"must not contain U+{ord(character):04X}: "
            "only printable text, tabs and newlines"
        }


@pytest.mark.parametrize("character", ["\x00", "\x08", "\x7f"])
def test_control_characters_in_a_note_are_a_422(sides: Sides, character: str) -> None:
    for side, response in sides.post_note(json.dumps({"body": f"a{character}b"})).items():
        assert response.status_code == 422, (side, response.text)
        assert list(response.json()["fields"]) == ["body"]
        assert f"U+{ord(character):04X}" in response.json()["fields"]["body"]
    notes = sides.client.get(sides.note_routes["flask"]).json()["notes"]
    assert notes == []  # nothing was written


def test_tabs_and_newlines_are_text_and_crlf_becomes_lf(sides: Sides) -> None:
    for side, response in sides.post_note(json.dumps({"body": "a\tb\r\nc\nd"})).items():
        assert response.status_code == 201, (side, response.text)
        assert response.json()["body"] == "a\tb\nc\nd"


def test_a_lone_surrogate_is_a_422_not_a_500(sides: Sides) -> None:
    for side, response in sides.post_note('{"body": "a\\ud800b"}').items():
        assert response.status_code == 422, (side, response.text)
    body = '{"kind": "sleep", "params": {"steps": 1}, "name": "\\udfff"}'
    for side, response in sides.post_task(body).items():
        assert response.status_code == 422, (side, response.text)


# -- 3. many unknown keys: bounded work, bounded answer


def test_40000_unknown_keys_give_the_first_errors_and_a_count(sides: Sides) -> None:
    unknown = {f"key{i}": i for i in range(40_000)}
    task_body = json.dumps({"kind": "sleep", **unknown})
    note_body = json.dumps({"body": "text", **unknown})
    assert 600_000 < len(task_body) <= MAX_JSON_BODY
    answers = list(sides.post_task(task_body).items()) + list(sides.post_note(note_body).items())
    for side, response in answers:
        assert response.status_code == 422, (side, response.text[:200])
        assert len(response.content) < 4096, (side, len(response.content))
        data = response.json()
        assert len(data["fields"]) == MAX_REPORTED_ERRORS
        assert data["fields"]["key0"] == "Extra inputs are not permitted"
        assert data["more"] == 40_000 - MAX_REPORTED_ERRORS


def test_a_json_body_over_the_limit_is_a_413_before_any_decoding(sides: Sides) -> None:
    """An 80 MB body of ``[1]`` arrays took 24 s of GIL and 2.3 GB, stalling every
    route; a body over ``MAX_JSON_BODY`` is refused unread, on both sides alike."""
    items = ",".join(["[1]"] * (MAX_JSON_BODY // 4 + 1))
    task_body = '{"kind": "sleep", "x": [' + items + "]}"
    note_body = '{"body": "text", "x": [' + items + "]}"
    answers = [(task_body, response) for response in sides.post_task(task_body).values()] + [
        (body, response) for body in [note_body] for response in sides.post_note(body).values()
    ]
    for body, response in answers:
        assert response.status_code == 413, response.text[:200]
        message = f"the JSON body is {len(body):,} bytes; at most {MAX_JSON_BODY:,} are accepted"
        assert response.json() == {"error": message}


@pytest.mark.parametrize(
    ("number", "message"),
    [
        ("1" + "0" * 5000, "the body holds a number too long to read (more than 4300 digits)"),
        ("1e400", "the body holds a number out of range: 1e400"),
        ("-1e400", "the body holds a number out of range: -1e400"),
    ],
    ids=["5001-digits", "1e400", "-1e400"],
)
def test_a_number_json_cannot_carry_is_a_400_that_says_so(
    sides: Sides, number: str, message: str
) -> None:
    body = '{"kind": "sleep", "params": {"steps": ' + number + "}}"
    for side, response in sides.post_task(body).items():
        assert response.status_code == 400, (side, response.text[:200])
        assert response.json() == {"error": message}, side


def test_many_unknown_params_are_counted_too(sides: Sides) -> None:
    body = json.dumps({"kind": "sleep", "params": {f"k{i}": 1 for i in range(3000)}})
    for side, response in sides.post_task(body).items():
        assert response.status_code == 422, (side, response.text[:200])
        data = response.json()
        assert len(data["fields"]) == MAX_REPORTED_ERRORS and "params.k0" in data["fields"]
        assert data["more"] == 3000 - MAX_REPORTED_ERRORS


def test_a_huge_unknown_key_is_cut_in_the_answer(sides: Sides) -> None:
    body = json.dumps({"kind": "sleep", "x" * 1_000_000: 1})
    for side, response in sides.post_task(body).items():
        assert response.status_code == 422, (side, response.text[:200])
        assert len(response.content) < 1024


# -- 4. smaller edges


@pytest.mark.parametrize(
    "path", ["/api/tasks/-1", "/api/tasks/abc", "/api/tasks/1x", "/api/tasks/-1/notes"]
)
def test_a_malformed_task_id_is_the_api_404(sides: Sides, path: str) -> None:
    response = sides.client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": "no such task"}


def test_null_params_are_the_defaults(sides: Sides) -> None:
    for side, response in sides.post_task('{"kind": "sleep", "params": null}').items():
        assert response.status_code == 201, (side, response.text)
        assert response.json()["params"] == {"steps": 10, "delay": 0.2}


def test_a_blank_task_name_is_a_422_and_names_are_stripped(sides: Sides) -> None:
    for side, response in sides.post_task('{"kind": "sleep", "name": " \\t\\n "}').items():
        assert response.status_code == 422, (side, response.text)
        assert list(response.json()["fields"]) == ["name"]
    for side, path in TASK_ROUTES.items():
        body = json.dumps({"kind": "sleep", "params": {"steps": 1}, "name": f"  {side} task  "})
        response = sides.post(path, body)
        assert response.status_code == 201, (side, response.text)
        assert response.json()["name"] == f"{side} task"


def test_a_name_is_checked_for_python_callers_too(flask_app: Flask) -> None:
    with pytest.raises(InvalidInput) as refused:
        task_client(flask_app).enqueue("sleep", {}, name="a\x00b")
    assert list(refused.value.fields) == ["name"]


# -- 5. generated documents: never a 5xx, and both sides agree

ODD_STRINGS = ["", " ", "\x00", "\t\n", "\r\n", "\x1b[31m", "\u2028", "\ufeff", "\ud800", "é" * 3]

strings = st.one_of(
    st.sampled_from(ODD_STRINGS),
    st.text(st.characters(exclude_categories=()), max_size=20),  # surrogates included
    st.text(max_size=200),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    strings,
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(strings, inner, max_size=4),
    max_leaves=20,
)


def dumps(value: Any) -> str:
    """JSON text with every non-ASCII character escaped (lone surrogates as ``\\udxxx``)."""
    return json.dumps(value, ensure_ascii=True)


def deep(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Documents around a deep nest: depth from 1 to 5000, arrays or objects."""
    return st.builds(
        lambda depth, objects, leaf: (
            '{"a": ' * depth + leaf + "}" * depth if objects else nested(depth, leaf)
        ),
        st.integers(min_value=1, max_value=5000),
        st.booleans(),
        inner,
    )


def wide(keys: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[str]:
    """Objects of up to 3000 unknown keys around ``keys``."""
    return st.builds(
        lambda known, count: dumps({**known, **{f"x{i}": i for i in range(count)}}),
        keys,
        st.integers(min_value=0, max_value=3000),
    )


task_keys = st.fixed_dictionaries(
    {},
    optional={
        "kind": st.one_of(st.sampled_from(["sleep", "primes", "nope", ""]), values),
        # "steps" alone keeps a valid sleep task short (0.2 s a step); no "limit", "delay".
        "params": st.one_of(
            st.none(),
            st.dictionaries(st.sampled_from(["steps", "x"]) | strings, values, max_size=3),
            values,
        ),
        "name": st.one_of(strings, values),
    },
)
task_documents = st.one_of(
    task_keys.map(dumps),
    values.map(dumps),
    deep(values.map(dumps)).map(lambda nest: '{"kind": "sleep", "params": {"a": ' + nest + "}}"),
    deep(st.just("1")),
    wide(task_keys),
    st.binary(max_size=50),
)
note_keys = st.fixed_dictionaries({}, optional={"body": st.one_of(strings, values)})
note_documents = st.one_of(
    note_keys.map(dumps),
    values.map(dumps),
    deep(strings.map(dumps)).map(lambda nest: '{"body": ' + nest + "}"),
    wide(note_keys),
    st.binary(max_size=50),
)

HYPOTHESIS = settings(
    max_examples=800,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # one server for every example, on purpose
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
"""A fixed budget: the same examples every run, about 30 s for each test."""


def assert_agreed(answers: dict[str, httpx.Response], document: str | bytes) -> None:
    """No 5xx, and the same status on both sides (a replayed create: 200 where Flask got 201)."""
    statuses = {side: response.status_code for side, response in answers.items()}
    assert all(status < 500 for status in statuses.values()), (statuses, document[:300])
    flask, native = statuses["flask"], statuses["native"]
    event(f"status {flask}")  # --hypothesis-show-statistics: what the examples reached
    assert flask == native or (flask, native) == (201, 200), (statuses, document[:300])


@HYPOTHESIS
@given(document=task_documents)
def test_generated_task_documents(sides: Sides, document: str | bytes) -> None:
    # One idempotency key for both sides: a task Flask creates, native gives back
    # (200) rather than refusing its name (409); native still validates everything first.
    key = uuid.uuid4().hex
    assert_agreed(sides.post_task(document, **{"Idempotency-Key": key}), document)


@HYPOTHESIS
@given(document=note_documents)
def test_generated_note_documents(sides: Sides, document: str | bytes) -> None:
    assert_agreed(sides.post_note(document), document)
