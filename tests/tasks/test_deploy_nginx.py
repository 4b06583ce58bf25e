"""The example's progress WebSocket behind real nginx (``deploy/nginx.conf`` as it ships).

nginx must pass the upgrade on (``Upgrade`` and ``Connection``, HTTP/1.1 to the
service) and the cookies with it: the socket's first message names the user
who logged in through Flask's form, through the same nginx. The rest of the
nginx checks are the skeleton's (``tests/test_deploy_nginx.py``).
"""

from __future__ import annotations

from pathlib import Path

import httpx

from config.settings import SESSION_COOKIE_NAME as COOKIE
from tests.support.login import EMAIL, PASSWORD, csrf_token, websocket_hello
from tests.support.nginx import proxied_server, requires_nginx

pytestmark = requires_nginx


def test_the_progress_socket_behind_nginx_knows_who_logged_in(
    tmp_path: Path, migrated: str
) -> None:
    with proxied_server(tmp_path / "nginx", migrated) as (proxy, _server):
        with httpx.Client(base_url=proxy.url, timeout=10) as client:
            page = client.get("/auth/register").text
            registered = client.post(
                "/auth/register",
                data={
                    "csrf_token": csrf_token(page),
                    "email": EMAIL,
                    "password": PASSWORD,
                    "confirm": PASSWORD,
                },
            )
            assert registered.status_code == 302, registered.text
            cookie = f"{COOKIE}={client.cookies[COOKIE]}"
        hello = websocket_hello(f"{proxy.ws_url}/ws/tasks", cookie)
    assert hello == {"type": "hello", "task": None, "user": {"id": 1, "email": EMAIL}}
