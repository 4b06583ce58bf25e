"""The example's progress WebSocket behind real nginx (``deploy/nginx.conf`` as it ships).

nginx must pass the upgrade on (``Upgrade`` and ``Connection``, HTTP/1.1 to the
service) and the cookies with it: the socket's first message names the user
who logged in through Flask's form, through the same nginx. The rest of the
nginx checks are the skeleton's (``tests/test_deploy_nginx.py``).
"""

from __future__ import annotations

from pathlib import Path

from config.settings import SESSION_COOKIE_NAME as COOKIE
from tests.support.login import EMAIL, register_and_log_in, websocket_hello
from tests.support.nginx import proxied_server, requires_nginx

pytestmark = requires_nginx


def test_the_progress_socket_behind_nginx_knows_who_logged_in(
    tmp_path: Path, migrated: str
) -> None:
    with proxied_server(tmp_path / "nginx", migrated) as (proxy, _server):
        client = register_and_log_in(proxy)  # Flask's forms, through nginx
        cookie = f"{COOKIE}={client.cookies[COOKIE]}"
        client.close()
        hello = websocket_hello(f"{proxy.ws_url}/ws/tasks", cookie)
    assert hello == {"type": "hello", "task": None, "user": {"id": 1, "email": EMAIL}}
