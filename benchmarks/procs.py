"""Start, watch and stop benchmarked server subprocesses; sample their memory."""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

import psutil

from benchmarks.servers import PROJECT_ROOT, ServerSpec

MIB = 1024 * 1024


class ServerStartError(RuntimeError):
    """A server subprocess exited or did not answer before the start timeout."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinning_available() -> bool:
    """Return True if ``taskset`` exists and CPUs 0 and 1 are both usable."""
    try:
        cpus = os.sched_getaffinity(0)
    except AttributeError:  # pragma: no cover - non-Linux
        return False
    return shutil.which("taskset") is not None and {0, 1} <= cpus


def pin_current_process(cpu: int | None) -> None:
    """Pin this (load generator) process to ``cpu``; ``None`` leaves it unpinned."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def tail(path: Path, lines: int = 20) -> str:
    """Return the last ``lines`` lines of a text file (empty if missing)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def stop_tree(proc: subprocess.Popen[bytes], sig: int, timeout: float) -> None:
    """Stop ``proc`` by PID (``sig``, then SIGKILL after ``timeout`` s) and kill what it forked.

    The children are listed before the signal, so those the process leaves behind
    (a supervisor killed before its workers) are still found and killed by PID.
    """
    children: list[psutil.Process] = []
    with contextlib.suppress(psutil.Error):
        children = psutil.Process(proc.pid).children(recursive=True)
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
    for child in children:
        with contextlib.suppress(psutil.Error):
            if child.is_running():
                child.kill()
                child.wait(timeout=timeout)


class ServerProcess:
    """One running benchmarked server: a subprocess, its port, and its log file.

    Use as a context manager; the process (and any children it forked) is always
    stopped by PID on exit.
    """

    def __init__(
        self,
        spec: ServerSpec,
        *,
        threads: int,
        cpu: int | None,
        log_path: Path,
        start_timeout: float = 30.0,
        wrapper: list[str] | None = None,
        stop_signal: int = signal.SIGTERM,
        processes: int = 1,
    ) -> None:
        self.spec = spec
        self.threads = threads
        self.processes_count = processes
        self.cpu = cpu
        self.log_path = log_path
        self.start_timeout = start_timeout
        self.wrapper = wrapper or []
        self.stop_signal = stop_signal
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        """PID of the server's main process."""
        assert self.proc is not None, "server not started"
        return self.proc.pid

    def command(self) -> list[str]:
        """Full command line, including ``taskset`` pinning when a CPU is set."""
        cmd = self.spec.command(self.port, self.threads, processes=self.processes_count)
        if self.wrapper:
            cmd = [cmd[0], *self.wrapper, *cmd[1:]]
        if self.cpu is not None:
            cmd = ["taskset", "-c", str(self.cpu), *cmd]
        return cmd

    def start(self) -> None:
        """Start the subprocess and wait until it answers ``GET /hello`` with 200."""
        self.port = free_port()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p
        )
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.proc = subprocess.Popen(
            self.command(),
            cwd=PROJECT_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.stop()
                raise ServerStartError(
                    f"{self.spec.name} exited with code {code} during start-up; "
                    f"log {self.log_path}:\n{tail(self.log_path)}"
                )
            if self._ready():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise ServerStartError(
                    f"{self.spec.name} did not answer on port {self.port} within "
                    f"{self.start_timeout:.0f} s; log {self.log_path}:\n{tail(self.log_path)}"
                )
            time.sleep(0.05)

    def _ready(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2.0)
        try:
            conn.request("GET", "/hello")
            resp = conn.getresponse()
            resp.read()
            return resp.status == 200
        except OSError:
            return False
        finally:
            conn.close()

    def processes(self) -> list[psutil.Process]:
        """The server's main process and all its descendants."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        try:
            main = psutil.Process(self.proc.pid)
            return [main, *main.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def rss(self) -> int:
        """Total resident set size of the process tree, in bytes."""
        return sum(_rss(p) for p in self.processes())

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server by PID (``stop_signal``, then SIGKILL) and reap any children."""
        proc, self.proc = self.proc, None
        try:
            if proc is not None:
                stop_tree(proc, self.stop_signal, timeout)
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ProcessStartError(RuntimeError):
    """A :class:`ManagedProcess` exited, or was not ready in time."""


class ManagedProcess:
    """A subprocess with its output in a log file, stopped by PID (and what it forked).

    For what is not a benchmarked server (:class:`ServerProcess`): the service's
    own commands, ``redis-server``.

    :param name: for messages.
    :param command: the command line.
    :param env: its environment.
    :param cwd: its working directory.
    :param log_path: where its stdout and stderr go.
    """

    def __init__(
        self, name: str, command: Sequence[str], env: dict[str, str], cwd: Path, log_path: Path
    ) -> None:
        self.name = name
        self.command = list(command)
        self.env = env
        self.cwd = cwd
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        """Start the process (it is not ready yet: see :meth:`wait_until`)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.command,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_until(self, ready: Callable[[], bool], timeout: float) -> None:
        """Poll ``ready()`` until it is true.

        :raises ProcessStartError: the process exited, or ``timeout`` seconds passed.
        """
        assert self.proc is not None, "not started"
        deadline = time.monotonic() + timeout
        while not ready():
            if self.proc.poll() is not None:
                raise ProcessStartError(
                    f"{self.name} exited with code {self.proc.returncode}; "
                    f"log {self.log_path}:\n{tail(self.log_path)}"
                )
            if time.monotonic() > deadline:
                raise ProcessStartError(
                    f"{self.name} not ready within {timeout:g} s; "
                    f"log {self.log_path}:\n{tail(self.log_path)}"
                )
            time.sleep(0.05)

    def log_matches(self, pattern: re.Pattern[str]) -> int:
        """How many lines of the log so far match ``pattern``."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return 0
        return sum(1 for line in lines if pattern.search(line))

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, SIGKILL after ``timeout`` s, and any child left is killed; by PID."""
        proc, self.proc = self.proc, None
        try:
            if proc is not None:
                stop_tree(proc, signal.SIGTERM, timeout)
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None


def _rss(proc: psutil.Process) -> int:
    try:
        return int(proc.memory_info().rss)
    except psutil.Error:
        return 0


def _reset_hwm(pid: int) -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) of ``pid``; False if not permitted."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _read_hwm(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class RssSampler:
    """Sample the RSS of a server's process tree in a thread and keep the peak.

    On Linux, the kernel's peak counter (VmHWM, reset through ``clear_refs`` when
    allowed) is read as well, so short spikes between samples are not missed.
    """

    def __init__(self, server: ServerProcess, interval: float = 0.01) -> None:
        self.interval = interval
        self._procs = server.processes()
        self.baseline = sum(_rss(p) for p in self._procs)
        self.peak = self.baseline
        self._hwm_ok = all(_reset_hwm(p.pid) for p in self._procs) and bool(self._procs)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, sum(_rss(p) for p in self._procs))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, sum(_rss(p) for p in self._procs))
        if self._hwm_ok:
            hwms = [_read_hwm(p.pid) for p in self._procs]
            if all(h is not None for h in hwms):
                self.peak = max(self.peak, sum(h for h in hwms if h is not None))

    @property
    def growth_mib(self) -> float:
        """Peak RSS growth over the baseline, in MiB."""
        return max(self.peak - self.baseline, 0) / MIB


def python_executable() -> str:
    """The interpreter used for the server subprocesses (the one running the runner)."""
    return sys.executable
