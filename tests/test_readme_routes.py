"""The README's "Adding routes" section, followed verbatim on a copy of the project.

Each Python block of the section is applied to a temporary copy of this
checkout (:func:`tests.support.project.copy_checkout`) as the sentence before it
says: "a new file `path`" writes the block as that file; "in `path`" is an edit
of that existing file, found and checked by :func:`apply_edit`. Then the copy's
own ``manage.py`` migrates a fresh database and serves it, an account is
registered, and both routes are requested over HTTP: each must answer its JSON
and be served by its own side (the ``side=`` of its access line).
"""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from config import PROJECT_ROOT
from tests.support.cli import ServerProcess, environment
from tests.support.login import register_and_log_in
from tests.support.project import copy_checkout

SECTION = "## Adding routes"
"""The heading of the section the test follows."""

FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.MULTILINE | re.DOTALL)
"""A fenced code block: group 1 its language, group 2 its text."""

NEW_FILE = re.compile(r"new file `([^`]+\.py)`")
"""What the sentence before a block says when the block is a whole new file."""

EDITED_FILE = re.compile(r"\bin `([^`]+\.py)`")
"""What it says when the block is an edit of an existing file."""

CURL = re.compile(r"^curl -s localhost:\d+(/\S+)\s+# (.*)$", re.MULTILINE)
"""A request of the section's shell block: group 1 the path, group 2 the comment."""


@dataclass(frozen=True)
class Step:
    """One Python block of the section: write ``code`` as ``path``, or edit ``path`` with it."""

    path: str
    code: str
    new_file: bool


def section(readme: str) -> str:
    """The text of the "Adding routes" section of ``readme``, up to the next heading.

    :raises AssertionError: if the README has no such section.
    """
    start = readme.find(f"\n{SECTION}\n")
    assert start >= 0, f"no {SECTION!r} section in the README"
    end = readme.find("\n## ", start + len(SECTION) + 2)
    return readme[start : end if end >= 0 else len(readme)]


def steps(text: str) -> list[Step]:
    """The section's Python blocks, each with the file the text just before it names.

    :raises AssertionError: if the text before a block names no file, or names
        a new file and an edited one at once.
    """
    found: list[Step] = []
    previous_end = 0
    for block in FENCE.finditer(text):
        before = text[previous_end : block.start()]
        previous_end = block.end()
        if block.group(1) != "python":
            continue
        created, edited = NEW_FILE.findall(before), EDITED_FILE.findall(before)
        assert len(created) + len(edited) == 1, f"which file is this block for?\n{before}"
        path = (created or edited)[0]
        found.append(Step(path, block.group(2), new_file=bool(created)))
    return found


def apply_edit(current: str, edit: str) -> str:
    """``current`` with the span ``edit`` shows replaced by ``edit``.

    The span runs from the file's one line equal to ``edit``'s first line to the
    next line equal to its last. ``edit`` must be that span with lines added:
    each line of the span appears in ``edit``, in order, as it is or extended at
    its end (``from app import auth`` as ``from app import auth, hello``).

    :raises AssertionError: if the first line is not found exactly once, the
        last not after it, or the span has a line ``edit`` drops or changes --
        the README's "before" no longer matches the code.
    """
    lines, new = current.splitlines(), edit.rstrip("\n").splitlines()
    starts = [i for i, line in enumerate(lines) if line == new[0]]
    assert len(starts) == 1, f"{new[0]!r} is in the file {len(starts)} times, not once"
    start = starts[0]
    ends = [i for i in range(start, len(lines)) if lines[i] == new[-1]]
    assert ends, f"no {new[-1]!r} after {new[0]!r} in the file"
    span = lines[start : ends[0] + 1]
    remaining = iter(new)
    for line in span:
        assert any(shown.startswith(line) for shown in remaining), (
            f"the README's edit drops or changes {line!r}; the file's code is:\n" + "\n".join(span)
        )
    return "\n".join([*lines[:start], *new, *lines[ends[0] + 1 :]]) + "\n"


def follow(readme: str, project: Path) -> list[Step]:
    """Apply the section's steps to ``project``; return them.

    :raises AssertionError: if a "new" file exists already, an edited one does
        not, or an edit does not fit (:func:`apply_edit`).
    """
    done = steps(section(readme))
    for step in done:
        target = project / step.path
        if step.new_file:
            assert not target.exists(), f"{step.path} is not new"
            target.write_text(step.code)
        else:
            assert target.is_file(), f"{step.path} does not exist"
            target.write_text(apply_edit(target.read_text(), step.code))
    return done


@dataclass(frozen=True)
class Site:
    """A base URL, as :func:`tests.support.login.register_and_log_in` takes."""

    url: str


def get(port: int, path: str, request_id: str) -> tuple[int, object]:
    """``GET path`` with ``X-Request-ID: request_id``; return the status and the JSON body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers={"X-Request-ID": request_id})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def side(server: ServerProcess, request_id: str) -> str:
    """The ``side`` of the access line of the request ``request_id``."""
    return server.wait_for_line(re.compile(rf"request_id={re.escape(request_id)} side=(\w+)"))


def test_the_readme_names_a_file_for_each_python_block_and_the_two_paths() -> None:
    text = section((PROJECT_ROOT / "README.md").read_text())
    assert [(s.path, s.new_file) for s in steps(text)] == [
        ("app/hello.py", True),
        ("app/__init__.py", False),
        ("tornado_handlers/greeting.py", True),
        ("server/routes.py", False),
        ("server/routes.py", False),
    ]
    assert [path for path, _ in CURL.findall(text)] == ["/hello/ada", "/api/greeting/ada"]


def test_an_edit_whose_before_no_longer_matches_the_code_is_refused() -> None:
    current = "def f() -> None:\n    a()\n    b()\n"
    assert apply_edit(current, "def f() -> None:\n    a()\n    x()\n    b()\n") == (
        "def f() -> None:\n    a()\n    x()\n    b()\n"
    )
    try:
        apply_edit(current, "def f() -> None:\n    x()\n    b()\n")
    except AssertionError as error:
        assert "drops or changes '    a()'" in str(error)
    else:
        raise AssertionError("an edit dropping a line of the code was applied")


def test_both_route_examples_work_when_pasted_into_a_copy_of_the_project(
    tmp_path: Path, database_url: str, servers: list[ServerProcess]
) -> None:
    project = copy_checkout(tmp_path / "project")
    follow((PROJECT_ROOT / "README.md").read_text(), project)
    manage = (sys.executable, str(project / "manage.py"))
    env = environment(database_url, PORT="0", THREADS="4", AUTORELOAD="false")
    upgraded = subprocess.run(
        [*manage, "db", "upgrade"], env=env, cwd=project, capture_output=True, text=True, timeout=60
    )
    assert upgraded.returncode == 0, upgraded.stderr
    server = ServerProcess("--no-reload", env=env, manage=manage, cwd=project)
    servers.append(server)
    port = server.port()
    register_and_log_in(Site(f"http://127.0.0.1:{port}")).close()

    requests = dict(CURL.findall(section((PROJECT_ROOT / "README.md").read_text())))
    assert get(port, "/hello/ada", "flask-hello") == (200, {"hello": "ada"})
    assert "from Flask" in requests["/hello/ada"]
    assert side(server, "flask-hello") == "flask"
    assert get(port, "/api/greeting/ada", "native-greeting") == (
        200,
        {"hello": "ada", "users": 1},
    )
    assert "from the native handler" in requests["/api/greeting/ada"]
    assert side(server, "native-greeting") == "native"
