"""``manage.py`` as a user runs it: a real process, real arguments, real output."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from config import PROJECT_ROOT

MANAGE = str(PROJECT_ROOT / "manage.py")
"""The path of ``manage.py`` in this checkout."""

SERVING = re.compile(r"serving on http://127\.0\.0\.1:(\d+)")
"""The start-up line ``manage.py serve`` logs once it listens; group 1 is the port."""


SECRET_KEY = secrets.token_urlsafe(48)
"""The ``SECRET_KEY`` of :func:`environment`: made at random per test run, so that a
test with ``APP_ENV=production`` passes the key checks (a key in the repository would not)."""


def sitecustomize_dir(parent: Path, code: str) -> Path:
    """Make ``parent/site`` holding ``sitecustomize.py`` with ``code``: put it on a
    ``manage.py`` process's path (``environment(..., site=...)``) to add test-only routes
    or kinds to the real server."""
    directory = parent / "site"
    directory.mkdir()
    (directory / "sitecustomize.py").write_text(code)
    return directory


def environment(database_url: str, site: Path | None = None, **extra: str) -> dict[str, str]:
    """The process environment: this test's database, testing mode, no stray settings."""
    env = {k: v for k, v in os.environ.items() if k not in ("PORT", "HOST", "APP_ENV")}
    env.update({"DATABASE_URL": database_url, "APP_ENV": "testing", "SECRET_KEY": SECRET_KEY})
    if site is not None:
        env["PYTHONPATH"] = str(site)
    env.update(extra)
    return env


def run(
    *args: str, env: dict[str, str], timeout: float = 60, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python manage.py *args`` to completion; stdout and stderr captured as text.

    :param cwd: the working directory (where the settings read ``.env``); default the test's.
    """
    return subprocess.run(
        [sys.executable, MANAGE, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class ServerProcess:
    """``manage.py serve`` in a subprocess; its stderr is read line by line as it comes.

    :param args: more arguments of ``serve``.
    :param env: the process environment.
    :param manage: the command before ``serve``; default this interpreter and
        this checkout's ``manage.py``.
    :param cwd: the working directory; default the test's.
    :param command: the ``manage.py`` command: ``serve``, or ``worker`` (a
        long-running process read, waited for and stopped the same way).
    """

    def __init__(
        self,
        *args: str,
        env: dict[str, str],
        manage: Sequence[str] = (sys.executable, MANAGE),
        cwd: Path | None = None,
        command: str = "serve",
    ) -> None:
        self.process = subprocess.Popen(
            [*manage, command, *args],
            env=env,
            cwd=cwd,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def log(self) -> str:
        """Everything written to stderr so far."""
        with self._changed:
            return "\n".join(self.lines)

    def wait_for_line(self, pattern: re.Pattern[str], count: int = 1, timeout: float = 30) -> str:
        """Wait until ``count`` lines match ``pattern``; return the last of them."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [match for line in self.lines if (match := pattern.search(line))]
                if len(found) >= count:
                    return found[count - 1].group(1)
                alive = self.process.poll() is None or self._reader.is_alive()
                assert alive and time.monotonic() < deadline, (
                    f"no line {pattern.pattern!r} (#{count}); log:\n" + "\n".join(self.lines)
                )
                self._changed.wait(0.2)

    def port(self, count: int = 1) -> int:
        """The port of the ``count``-th "serving on" line."""
        return int(self.wait_for_line(SERVING, count))

    def stop(self, timeout: float) -> tuple[int, float]:
        """SIGTERM; return the exit status and the seconds it took to exit."""
        start = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        status = self.process.wait(timeout)
        elapsed = time.monotonic() - start
        self._reader.join(5)
        return status, elapsed

    def close(self) -> None:
        """Kill the process if it still runs, and release its pipe."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._reader.join(5)
        if self.process.stderr is not None:
            self.process.stderr.close()
