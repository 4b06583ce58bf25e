"""Debian's nginx in front of a real ``manage.py serve``, configured by ``deploy/nginx.conf``.

The site file is used as it ships, with only its two port placeholders
replaced (the lines ``listen 80;`` and ``server 127.0.0.1:<PORT>;``). It holds http-level blocks,
as a file of ``/etc/nginx/conf.d/`` does; the main file around it here only
says where this nginx keeps its pid, logs and temporary files (a folder of the
test's) and that it stays in the foreground::

    with proxied_server(tmp_path, database_url) as (proxy, server):
        httpx.get(f"{proxy.url}/")
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from config import PROJECT_ROOT
from tests.support.cli import ServerProcess, environment

NGINX = Path("/usr/sbin/nginx")
"""Debian's nginx (``apt-get install nginx``, as ``.ci/run`` does)."""

SITE = PROJECT_ROOT / "deploy" / "nginx.conf"
"""The site file under test."""

LISTEN_PLACEHOLDER = re.compile(r"^(\s*)listen 80;$", re.MULTILINE)
"""The line of :data:`SITE` saying where nginx listens."""

UPSTREAM_PLACEHOLDER = re.compile(r"^(\s*)server 127\.0\.0\.1:[0-9]+;$", re.MULTILINE)
"""The line of :data:`SITE` saying where the service listens (its default ``PORT``)."""

requires_nginx = pytest.mark.skipif(
    not NGINX.exists(), reason=f"{NGINX} is missing: apt-get install nginx (as .ci/run does)"
)
"""Skip a test when Debian's nginx is not installed."""


@dataclass
class Proxy:
    """A running nginx: ``url`` is ``http://127.0.0.1:<port>``."""

    port: int

    @property
    def url(self) -> str:
        """The base URL, without a trailing slash."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        """The base WebSocket URL."""
        return f"ws://127.0.0.1:{self.port}"


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def site_config(listen_port: int, upstream_ports: Sequence[int]) -> str:
    """:data:`SITE` with its two placeholder lines' ports replaced, and nothing else changed.

    :param listen_port: nginx's port.
    :param upstream_ports: the service's port; several give one ``server`` line
        each (instances restarted in turn, docs/deploy.md).
    """
    text, listens = LISTEN_PLACEHOLDER.subn(rf"\1listen 127.0.0.1:{listen_port};", SITE.read_text())
    servers = "\n".join(f"\\1server 127.0.0.1:{port};" for port in upstream_ports)
    text, upstreams = UPSTREAM_PLACEHOLDER.subn(servers, text)
    assert (listens, upstreams) == (1, 1), f"{SITE}: one `listen 80;`, one `server 127.0.0.1:PORT;`"
    return text


def main_config(folder: Path, site: Path) -> str:
    """An nginx main file keeping everything in ``folder`` and including ``site`` in ``http``."""
    temp = {name: folder / name for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for path in temp.values():
        path.mkdir(exist_ok=True)
    # As root, nginx's workers would switch to "nobody", who cannot enter the test's folder.
    user = "user root;\n" if os.geteuid() == 0 else ""
    return (
        f"{user}worker_processes 1;\n"
        f"pid {folder / 'nginx.pid'};\n"
        f"error_log {folder / 'error.log'} info;\n"
        "events { worker_connections 128; }\n"
        "http {\n"
        f"    client_body_temp_path {temp['client_body']};\n"
        f"    proxy_temp_path {temp['proxy']};\n"
        f"    fastcgi_temp_path {temp['fastcgi']};\n"
        f"    uwsgi_temp_path {temp['uwsgi']};\n"
        f"    scgi_temp_path {temp['scgi']};\n"
        f"    include {site};\n"
        # The site's format, as docs/deploy.md says to name it (after the include).
        f"    access_log {folder / 'access.log'} hybrid;\n"
        "}\n"
    )


@contextlib.contextmanager
def nginx(folder: Path, *upstream_ports: int, timeout: float = 10) -> Iterator[Proxy]:
    """Run nginx in the foreground in front of ``127.0.0.1:<upstream_ports>``; stop it afterwards.

    :param folder: an empty folder for its configuration, pid, logs and temporary files.
    :param upstream_ports: the service's port, or its instances' ports.
    :raises AssertionError: if the configuration is invalid (``nginx -t``'s output
        says why) or nginx does not listen within ``timeout`` seconds.
    """
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    site = folder / "hybrid.conf"
    site.write_text(site_config(port, upstream_ports))
    conf = folder / "nginx.conf"
    conf.write_text(main_config(folder, site))
    command = [str(NGINX), "-p", str(folder), "-c", str(conf), "-e", str(folder / "error.log")]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen(
        [*command, "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert process.poll() is None, f"nginx exited: {process.communicate()[1]!r}"
            assert time.monotonic() < deadline, f"nginx does not listen on {port}"
            time.sleep(0.05)
        yield Proxy(port)
    finally:
        process.terminate()  # SIGTERM: nginx's fast shutdown
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        assert process.stderr is not None
        process.stderr.close()


def service_environment(database_url: str, **env: str) -> dict[str, str]:
    """The environment of ``manage.py serve`` behind nginx: trusting 127.0.0.1, JSON logs.

    :param database_url: a migrated database.
    :param env: more variables; they win over ``TRUSTED_PROXIES=127.0.0.1``,
        ``LOG_FORMAT=json``, ``PORT=0`` and ``AUTORELOAD=false``.
    """
    variables = {
        "TRUSTED_PROXIES": "127.0.0.1",
        "LOG_FORMAT": "json",
        "PORT": "0",
        "AUTORELOAD": "false",
        **env,
    }
    return environment(database_url, **variables)


@contextlib.contextmanager
def proxied_server(
    folder: Path, database_url: str, **env: str
) -> Iterator[tuple[Proxy, ServerProcess]]:
    """``manage.py serve`` on a free port, trusting 127.0.0.1, with nginx in front of it.

    :param folder: a folder for nginx's files.
    :param database_url: a migrated database (the ``migrated`` fixture).
    :param env: more variables of the service (they win over the defaults here:
        ``TRUSTED_PROXIES=127.0.0.1``, ``LOG_FORMAT=json``, ``PORT=0``, no autoreload).
    """
    server = ServerProcess(env=service_environment(database_url, **env))
    try:
        with nginx(folder, server.port()) as proxy:
            yield proxy, server
    finally:
        server.close()
