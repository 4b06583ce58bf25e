"""The ``live_server`` harness fails the test whose server misbehaved.

Each case runs a tiny test file in a child pytest (pytest's own ``pytester``) with
this suite's fixtures (``-p tests.conftest``), breaks its server by hand inside that
one test, and checks that the child run reports the break as an error of that test's
teardown: a leaked admission slot (the drain times out, ``in_flight`` stays 1), an
exception raised on the server thread (re-raised with its original traceback), and,
as the control, a clean server that passes quietly.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
"""The repository: the child run imports ``tests.conftest`` from here."""

CHILD_HEADER = """
import httpx
from tests.support.server import ServerFactory
"""


def run_child(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, body: str):  # type: ignore[no-untyped-def]
    """Run ``body`` (one test module's source) in a child pytest with this suite's fixtures.

    :returns: pytest's ``RunResult`` of the child run (outcomes and output lines).
    """
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    pytester.makepyfile(test_child=CHILD_HEADER + body)
    return pytester.runpytest_subprocess(
        "-p", "tests.conftest", "-p", "no:cacheprovider", "--tb=native", timeout=120
    )


def test_a_leaked_admission_slot_fails_the_test(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_child(
        pytester,
        monkeypatch,
        """
def test_leaks(live_server: ServerFactory, monkeypatch) -> None:
    server = live_server(shutdown_timeout=0.3)
    monkeypatch.setattr(server.hybrid.container, "release", lambda exchange: None)
    assert httpx.get(f"{server.url}/", timeout=10).status_code == 200
""",
    )
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*ERROR at teardown of test_leaks*", "*admission slot leaked: in_flight=1 (WSGI)*"]
    )
    result.stdout.fnmatch_lines(["*drain did not finish*in_flight=1*"])


def test_an_error_on_the_server_thread_is_raised_with_its_traceback(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_child(
        pytester,
        monkeypatch,
        """
def broken_close(wait: bool = True) -> None:
    raise RuntimeError("broken on purpose")


def test_breaks(live_server: ServerFactory, monkeypatch) -> None:
    server = live_server()
    monkeypatch.setattr(server.hybrid, "close", broken_close)
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
""",
    )
    result.assert_outcomes(passed=1, errors=1)
    # The original traceback: the frames of the server thread, down to the raise.
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_breaks*",
            "*server/serve.py*in shutdown*",
            "*hybrid.close(wait=False)*",
            '*raise RuntimeError("broken on purpose")*',
            "E*RuntimeError: broken on purpose",
        ]
    )


def test_a_clean_server_passes_quietly(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_child(
        pytester,
        monkeypatch,
        """
def test_clean(live_server: ServerFactory) -> None:
    first, second = live_server(), live_server()
    for server in (first, second):
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
""",
    )
    result.assert_outcomes(passed=1)
