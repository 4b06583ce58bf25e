"""The service behind real nginx, configured by ``deploy/nginx.conf`` as it ships.

Debian's nginx (``/usr/sbin/nginx``) on a free port, in front of a real
``manage.py serve`` that trusts it (``TRUSTED_PROXIES=127.0.0.1``); only the
site file's two port placeholders are replaced (``tests/support/nginx.py``).
Through it: a page, a form POST with its CSRF token, and the client's address
in the service's access log. The skeleton has no WebSocket of its own: a
feature's tests check theirs behind nginx (the example's, in its test folder).
And the restart docs/deploy.md describes for one host: two instances behind
nginx, one stopped while requests flow, and not one request fails.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from config.settings import SESSION_COOKIE_NAME
from tests.support.cli import ServerProcess
from tests.support.login import EMAIL, PASSWORD, csrf_token
from tests.support.nginx import nginx, proxied_server, requires_nginx, service_environment

pytestmark = requires_nginx


def access_lines(log: str) -> list[dict[str, Any]]:
    """The service's JSON access lines (``"event": "request"``) in ``log``, in order."""
    lines = []
    for line in log.splitlines():
        start = line.find("{")
        if start < 0:
            continue
        try:
            record = json.loads(line[start:])
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event") == "request":
            lines.append(record)
    return lines


def test_a_page_and_a_form_with_its_csrf_token_behind_nginx(tmp_path: Path, migrated: str) -> None:
    with (
        proxied_server(tmp_path / "nginx", migrated) as (proxy, _server),
        httpx.Client(base_url=proxy.url, timeout=10) as client,
    ):
        home = client.get("/")
        assert home.status_code == 200
        assert 'id="welcome"' in home.text
        assert home.headers["server"].startswith("nginx")

        page = client.get("/auth/register").text
        form = {"email": EMAIL, "password": PASSWORD, "confirm": PASSWORD}
        refused = client.post("/auth/register", data=form)  # no token: Flask-WTF says no
        assert refused.status_code == 400
        registered = client.post("/auth/register", data={**form, "csrf_token": csrf_token(page)})
        assert registered.status_code == 302, registered.text
        assert registered.headers["location"] == "/"
        assert SESSION_COOKIE_NAME in client.cookies
        me = client.get("/api/me")  # native, from the cookie the form set
        assert me.status_code == 200
        assert me.json()["user"]["email"] == EMAIL


def test_the_access_log_has_the_client_behind_nginx(tmp_path: Path, migrated: str) -> None:
    request_id = uuid.uuid4().hex
    with proxied_server(tmp_path / "nginx", migrated) as (proxy, server):
        response = httpx.get(
            f"{proxy.url}/",
            headers={"X-Forwarded-For": "203.0.113.7", "X-Request-ID": request_id},
            timeout=10,
        )
        assert response.status_code == 200
        # nginx sent X-Forwarded-For "203.0.113.7, 127.0.0.1" from 127.0.0.1, a trusted
        # proxy; the client is the rightmost untrusted address. Stopping the server
        # flushes its log.
        assert server.stop(timeout=30)[0] == 0
    ours = [line for line in access_lines(server.log) if line.get("request_id") == request_id]
    assert len(ours) == 1, f"no JSON access line with request_id {request_id}:\n{server.log}"
    assert ours[0]["client"] == "203.0.113.7"
    assert ours[0]["side"] == "flask"
    assert ours[0]["path"] == "/" and ours[0]["status"] == 200
    # nginx's own line, in the site's `hybrid` format, carries the same id.
    nginx_lines = (tmp_path / "nginx" / "access.log").read_text().splitlines()
    assert [line for line in nginx_lines if f"request_id={request_id} " in line], nginx_lines


LOGIN_SERVED = re.compile(r"(/auth/login)")
"""An access line of ``/auth/login``, in either log format."""


def test_stopping_one_of_two_instances_behind_nginx_fails_no_request(
    tmp_path: Path, migrated: str
) -> None:
    env = service_environment(migrated)
    first, second = ServerProcess(env=env), ServerProcess(env=env)
    statuses: dict[str, list[int]] = {"GET": [], "POST": []}
    done = threading.Event()

    def browse(proxy_url: str, method: str) -> None:
        with httpx.Client(base_url=proxy_url, timeout=10) as client:
            # The token and its session cookie come from whichever instance
            # answers: both have the same key, neither keeps sessions in memory.
            page = client.get("/auth/login").text
            form = {"csrf_token": csrf_token(page), "email": EMAIL, "password": "wrong"}
            while not done.is_set():
                if method == "GET":
                    statuses[method].append(client.get("/auth/login").status_code)
                else:
                    statuses[method].append(client.post("/auth/login", data=form).status_code)

    try:
        with nginx(tmp_path / "nginx", first.port(), second.port()) as proxy:
            browsers = [
                threading.Thread(target=browse, args=(proxy.url, method))
                for method in ("GET", "GET", "POST", "POST")
            ]
            for browser in browsers:
                browser.start()
            try:
                first.wait_for_line(LOGIN_SERVED)  # both instances take requests
                second.wait_for_line(LOGIN_SERVED)
                assert first.stop(timeout=30)[0] == 0  # SIGTERM, as systemctl restart does
                served = len(statuses["POST"])
                deadline = time.monotonic() + 10
                while len(statuses["POST"]) < served + 20 and time.monotonic() < deadline:
                    time.sleep(0.05)  # the second instance alone serves on
            finally:
                done.set()
                for browser in browsers:
                    browser.join(15)
    finally:
        first.close()
        second.close()
    assert len(statuses["POST"]) >= served + 20
    assert set(statuses["GET"]) == {200}
    assert set(statuses["POST"]) == {422}  # the form again: a wrong password, a valid token
