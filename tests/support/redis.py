"""A private ``redis-server`` for tests: its own port, its own directory, nothing saved.

Tests never touch the machine's Redis on 6379 (another test run, or a developer's
data, may be on it): each test that needs Redis starts its own with the
``redis_server`` fixture (registered in ``tests/conftest.py``), on a free port of
127.0.0.1, with persistence off (``--save '' --appendonly no``), so that a
:meth:`RedisServer.stop` then :meth:`RedisServer.start` is what a real restart
of a cache-only Redis is: same address, data gone.

CI installs ``redis-server`` (``.ci/run``, the README's test command); when it is
missing the fixture fails with a message saying so, rather than skipping, so a
machine without it cannot pass the suite by not running these tests.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from wsgi_bridge.testing import wait_for

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
"""The ``redis-server`` executable the tests start (Debian's package installs it here)."""


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` process on ``127.0.0.1:port``, started by a test.

    :param directory: its working directory (its log is ``directory/redis.log``);
        created if missing.
    :param port: the TCP port; default a free one, kept across :meth:`stop` and
        :meth:`start`.
    :param executable: the ``redis-server`` binary.
    :raises RuntimeError: if ``executable`` does not exist (install the
        ``redis-server`` package, as ``.ci/run`` does).
    """

    def __init__(
        self, directory: Path, port: int | None = None, executable: str = REDIS_SERVER
    ) -> None:
        if not Path(executable).is_file():
            raise RuntimeError(
                f"{executable} not found: the Redis tests need a real redis-server "
                "(apt-get install -y redis-server, as .ci/run and the README do)"
            )
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.executable = executable
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``, for ``REDIS_URL`` or ``redis.Redis.from_url``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log(self) -> str:
        """What the server logged so far (every start appends to the same file)."""
        path = self.directory / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def ping(self) -> bool:
        """Whether the server answers ``PING`` now (one short attempt)."""
        import redis  # here: a project without a Redis feature need not install redis-py

        client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def start(self, timeout: float = 10) -> None:
        """Start the server (again, on the same port) and wait until it answers ``PING``.

        :param timeout: seconds to wait for ``PING``.
        :raises RuntimeError: if it is already running, exits, or does not answer in time
            (the message includes its log).
        """
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"redis-server on port {self.port} is already running")
        command = [self.executable, "--bind", "127.0.0.1", "--port", str(self.port)]
        command += ["--save", "", "--appendonly", "no"]  # a restart loses the data
        command += ["--dir", str(self.directory), "--logfile", str(self.directory / "redis.log")]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        process = self.process
        if not wait_for(lambda: process.poll() is not None or self.ping(), timeout):
            self.kill()
            raise RuntimeError(
                f"redis-server on port {self.port} did not answer PING within {timeout} s:\n"
                + self.log
            )
        if process.poll() is not None:
            raise RuntimeError(
                f"redis-server on port {self.port} exited with {process.returncode}:\n" + self.log
            )

    def stop(self, timeout: float = 10) -> None:
        """Stop the server gracefully (SIGTERM) and wait for it to exit; no-op if not running.

        :param timeout: seconds to wait before killing it.
        """
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a paused server would not act on TERM
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections are accepted by the kernel but
        nothing is answered, as with a hung Redis; :meth:`resume` undoes it.

        :raises RuntimeError: if it is not running.
        """
        self._running().send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a :meth:`pause` d server run again (SIGCONT).

        :raises RuntimeError: if it is not running.
        """
        self._running().send_signal(signal.SIGCONT)

    def _running(self) -> subprocess.Popen[bytes]:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"redis-server on port {self.port} is not running")
        return self.process

    def kill(self) -> None:
        """Kill the server (SIGKILL), as a crash would; no-op if not running."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.process = None


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private ``redis-server`` for this test, started; stopped afterwards."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
