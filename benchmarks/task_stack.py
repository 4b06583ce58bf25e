"""The stack the task-queue benchmark measures, one per backend and round.

A database migrated by ``manage.py db upgrade``, a private ``redis-server`` on a
free port (queue backends only), ``manage.py serve`` and ``manage.py worker
--processes N``: the commands a deployment runs, in subprocesses stopped by PID.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import secrets
import shutil
import subprocess
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from benchmarks.clients import HOST
from benchmarks.procs import ManagedProcess, ProcessStartError, free_port
from benchmarks.servers import PROJECT_ROOT

MANAGE = str(PROJECT_ROOT / "manage.py")
WORKER_STARTED = re.compile(r"worker started")
"""What ``manage.py worker`` logs (once per process) when its consumers run."""


class StackError(ProcessStartError):
    """A part of the benchmarked stack (database, Redis, server, workers) did not start."""


@dataclass(frozen=True)
class Backend:
    """One column of the comparison: ``inprocess``, or the queue with ``workers`` processes."""

    name: str
    workers: int

    @property
    def task_backend(self) -> str:
        """The ``TASK_BACKEND`` value."""
        return "queue" if self.workers else "inprocess"

    @property
    def description(self) -> str:
        """What runs, in words."""
        if not self.workers:
            return "TASK_BACKEND=inprocess: manage.py serve runs the tasks on its executor"
        return (
            f"TASK_BACKEND=queue: manage.py serve enqueues on Redis (Dramatiq), "
            f"manage.py worker --processes {self.workers} runs them"
        )


def _http_ok(port: int, path: str) -> bool:
    conn = http.client.HTTPConnection(HOST, port, timeout=2.0)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status == 200
    except OSError:
        return False
    finally:
        conn.close()


def _redis_ok(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def redis_server_path() -> str | None:
    """The ``redis-server`` executable, or ``None`` if it is not installed."""
    return shutil.which("redis-server")


class ServiceStack:
    """One backend's stack for one round: database, Redis (queue), server, workers.

    Use as a context manager; everything started is stopped on exit, in reverse
    order, and a PostgreSQL schema made for it is dropped.

    :param backend: what to run.
    :param threads: ``THREADS`` of the server and of each worker process.
    :param database_url: a PostgreSQL URL (the stack gets a schema of its own
        there), or ``None`` for a SQLite file in ``work_dir``.
    :param work_dir: a private directory (the SQLite file, Redis's directory, the cwd).
    :param log_dir: where the processes' logs go.
    :param label: prefix of the log files' names.
    :param env: more variables for the service (e.g. ``SHADOW_ROUTES``), over the stack's own.
    :param server_module: run ``python -m <server_module> --port P`` instead of
        ``manage.py serve`` (e.g. ``benchmarks.lane_service``: the service plus a slow
        Flask view); None for ``manage.py serve``.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        threads: int,
        database_url: str | None,
        work_dir: Path,
        log_dir: Path,
        label: str,
        env: Mapping[str, str] | None = None,
        server_module: str | None = None,
    ) -> None:
        self.backend = backend
        self.server_module = server_module
        self.extra_env = dict(env or {})
        self.threads = threads
        self.database_url = database_url
        self.work_dir = work_dir
        self.log_dir = log_dir
        self.label = label
        self.port = 0
        self._stack = contextlib.ExitStack()

    def _log_path(self, part: str) -> Path:
        return self.log_dir / f"{self.label}-{part}.log"

    def _env(self, database_url: str, redis_url: str | None) -> dict[str, str]:
        # Only what the service needs: a shell's own settings must not leak in (and
        # production refuses variables that look like settings but are none).
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
        env.update(
            {
                "APP_ENV": "production",
                "SECRET_KEY": secrets.token_urlsafe(48),
                "DATABASE_URL": database_url,
                "THREADS": str(self.threads),
                "TASK_BACKEND": self.backend.task_backend,
                "DRAIN_GRACE": "0",
                "PYTHONUNBUFFERED": "1",
            }
        )
        if redis_url is not None:
            env["REDIS_URL"] = redis_url
        env.update(self.extra_env)
        return env

    def _database(self) -> str:
        if self.database_url is None:
            return f"sqlite:///{self.work_dir / 'tasks.db'}"
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        admin = create_engine(self.database_url, isolation_level="AUTOCOMMIT")
        self._stack.callback(admin.dispose)
        with admin.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))

        def drop() -> None:
            with admin.connect() as connection:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))

        self._stack.callback(drop)
        url = make_url(self.database_url).update_query_dict({"options": f"-csearch_path={schema}"})
        return url.render_as_string(hide_password=False)

    def _process(self, name: str, command: Sequence[str], env: dict[str, str]) -> ManagedProcess:
        proc = ManagedProcess(name, command, env, self.work_dir, self._log_path(name))
        self._stack.callback(proc.stop)
        proc.start()
        return proc

    def start(self, start_timeout: float = 60.0) -> None:
        """Start every part and wait until the server is ready and the workers consume.

        :raises ProcessStartError: a part did not start (with the tail of its log; a
            :class:`StackError` for a failed migration or a missing ``redis-server``).
        """
        database_url = self._database()
        redis_url = None
        if self.backend.workers:
            server = redis_server_path()
            if server is None:
                raise StackError("redis-server is not installed (apt-get install -y redis-server)")
            port = free_port()
            redis_url = f"redis://{HOST}:{port}/0"
            redis_proc = self._process(
                "redis",
                [server, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"],
                {"PATH": os.environ.get("PATH", "")},
            )
            redis_proc.wait_until(lambda: _redis_ok(redis_url), start_timeout)
        env = self._env(database_url, redis_url)
        migrate = subprocess.run(
            [sys.executable, MANAGE, "db", "upgrade"],
            cwd=self.work_dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=start_timeout,
            check=False,
        )
        if migrate.returncode != 0:
            raise StackError(f"manage.py db upgrade failed:\n{migrate.stderr[-2000:]}")
        self.port = free_port()
        command = [sys.executable, MANAGE, "serve", "--no-reload", "--port", str(self.port)]
        serve_env = env
        if self.server_module is not None:
            command = [sys.executable, "-m", self.server_module, "--port", str(self.port)]
            serve_env = {**env, "PYTHONPATH": str(PROJECT_ROOT)}
        serve = self._process("serve", command, serve_env)
        serve.wait_until(lambda: _http_ok(self.port, "/readyz"), start_timeout)
        if self.backend.workers:
            count = self.backend.workers
            worker = self._process(
                "worker", [sys.executable, MANAGE, "worker", "--processes", str(count)], env
            )
            worker.wait_until(lambda: worker.log_matches(WORKER_STARTED) >= count, start_timeout)

    def __enter__(self) -> ServiceStack:
        try:
            self.start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.close()
