"""Registry of the benchmarked servers.

Each server is a small module in this package, started by the runner as a subprocess
(``python -m benchmarks.servers.<module> --port P --threads N``). To add a server (for
example a multi-process mode of the hybrid server), write a module that accepts that
command line and add a :class:`ServerSpec` to :data:`SERVERS`; RSS is measured over the
whole process tree, so multi-process servers are accounted for.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]

#: Feature flags: ``wsgi`` serves the Flask app (all routes), ``native`` has ``/native``,
#: ``simple`` serves ``/hello`` and ``/json``.
WSGI = "wsgi"
NATIVE = "native"
SIMPLE = "simple"


@dataclass(frozen=True)
class ServerSpec:
    """How to start one benchmarked server and what it can serve."""

    name: str
    module: str
    description: str
    features: frozenset[str]
    extra_args: tuple[str, ...] = field(default=())
    #: Python modules that must import for the server to work (checked before a run).
    requires: tuple[str, ...] = field(default=())
    #: Python snippet run in a subprocess to check availability (must exit 0).
    check_code: str | None = None
    #: Whether ``--processes N`` runs N processes (workers) on the port.
    multiprocess: bool = False

    def command(
        self, port: int, threads: int, python: str = sys.executable, processes: int = 1
    ) -> list[str]:
        """Return the command line that starts this server on ``127.0.0.1:port``.

        :param processes: server processes (``--processes``); only for a
            :attr:`multiprocess` server, else it must be 1.
        :raises ValueError: ``processes`` other than 1 for a single-process server.
        """
        if processes != 1 and not self.multiprocess:
            raise ValueError(f"{self.name} runs one process only")
        more = ("--processes", str(processes)) if processes != 1 else ()
        return [
            python,
            "-m",
            self.module,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--threads",
            str(threads),
            *self.extra_args,
            *more,
        ]

    def check(self, python: str = sys.executable, timeout: float = 30.0) -> str | None:
        """Return ``None`` if the server can run here, else a human-readable reason."""
        code = self.check_code or "".join(f"import {mod}\n" for mod in self.requires)
        if not code:
            return None
        proc = subprocess.run(
            [python, "-c", code],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode == 0:
            return None
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        return lines[-1] if lines else f"check exited with {proc.returncode}"


#: Container options for the benchmark: the Tornado peers also get a 1 GiB body limit.
#: Admission runs at the bridge's defaults (bursts are admitted by queueing delay).
HYBRID_BRIDGE_ARGS: tuple[str, ...] = (
    "--bridge-option",
    f"max_body_size={1024 * 1024 * 1024}",
)

_HYBRID_CHECK = """
import wsgi_bridge
names = ("WSGIContainer", "WSGIFallback", "WSGIFallbackHandler")
missing = [n for n in names if not hasattr(wsgi_bridge, n)]
if missing:
    raise SystemExit("wsgi_bridge lacks " + ", ".join(missing))
from concurrent.futures import ThreadPoolExecutor
with ThreadPoolExecutor(1) as ex:
    wsgi_bridge.WSGIContainer(lambda environ, start_response: [], executor=ex)
"""

SERVERS: dict[str, ServerSpec] = {
    spec.name: spec
    for spec in (
        ServerSpec(
            "hybrid",
            "benchmarks.servers.hybrid",
            "Tornado + native route + Flask behind wsgi_bridge.WSGIContainer (this project), "
            "default admission, max_body_size=1 GiB (as the Tornado peers)",
            frozenset({WSGI, NATIVE, SIMPLE}),
            extra_args=HYBRID_BRIDGE_ARGS,
            check_code=_HYBRID_CHECK,
            multiprocess=True,
        ),
        ServerSpec(
            "hybrid-uvloop",
            "benchmarks.servers.hybrid",
            "the hybrid server as above, on uvloop's event loop (serve --loop uvloop)",
            frozenset({WSGI, NATIVE, SIMPLE}),
            extra_args=(*HYBRID_BRIDGE_ARGS, "--loop", "uvloop"),
            check_code=_HYBRID_CHECK + "import uvloop\n",
            multiprocess=True,
        ),
        ServerSpec(
            "tornado-wsgi",
            "benchmarks.servers.tornado_wsgi",
            "Tornado + native route + tornado.wsgi.WSGIContainer(executor=16 threads)",
            frozenset({WSGI, NATIVE, SIMPLE}),
            multiprocess=True,
        ),
        ServerSpec(
            "gunicorn-gthread",
            "benchmarks.servers.gunicorn_gthread",
            "gunicorn -k gthread --workers 1 --threads 16 (--workers N with --processes N)",
            frozenset({WSGI, SIMPLE}),
            requires=("gunicorn",),
            multiprocess=True,
        ),
        ServerSpec(
            "waitress",
            "benchmarks.servers.waitress_server",
            "waitress threads=16",
            frozenset({WSGI, SIMPLE}),
            requires=("waitress",),
        ),
        ServerSpec(
            "uvicorn-a2wsgi",
            "benchmarks.servers.uvicorn_a2wsgi",
            "uvicorn (1 worker, h11) + a2wsgi.WSGIMiddleware(workers=16)",
            frozenset({WSGI, SIMPLE}),
            requires=("uvicorn", "a2wsgi"),
        ),
        ServerSpec(
            "tornado-bare",
            "benchmarks.servers.tornado_bare",
            "bare Tornado RequestHandlers for /hello, /json, /native (upper bound)",
            frozenset({NATIVE, SIMPLE}),
            multiprocess=True,
        ),
    )
}

DEFAULT_SERVERS: tuple[str, ...] = tuple(SERVERS)
