"""Every task-id route answers a malformed or out-of-range id as the API's 404 (issue 15).

Real HTTP to the live hybrid server. Flask's rules take any segment in the
id's place (``<task_id:...>``, :class:`app.tasks.service.TaskIdConverter`);
the native rules must too (:data:`tornado_handlers.tasks.TASK_ID`), or a
negative id under ``/api/v2`` -- which only a native handler serves -- fell
through to Flask and came back as a generic "not found" page.
"""

from __future__ import annotations

import httpx
import pytest

from app.tasks.service import TaskNotFound, parse_task_id
from tests.support.server import ServerFactory

BAD_IDS = ["-1", "abc", "1x", "0", "2147483648", "%2B7", "%E2%91%A0", "9" * 4301]
"""Segments that are no task id: negative, words, zero, out of range, ``+7``, ``①``, and
more digits than ``int()`` converts (4300: it raised ``ValueError``, a 500)."""

ROUTES = [
    ("GET", "/api/tasks/{id}"),  # native (ported), Flask's twin behind FLASK_ROUTES
    ("GET", "/api/tasks/{id}/notes"),
    ("POST", "/api/tasks/{id}/notes"),
    ("POST", "/api/tasks/{id}/cancel"),
    ("POST", "/api/tasks/{id}/retry"),
    ("GET", "/api/v2/tasks/{id}/notes"),
    ("POST", "/api/v2/tasks/{id}/notes"),
    ("POST", "/api/v2/tasks/{id}/cancel"),
    ("POST", "/api/v2/tasks/{id}/retry"),
]
"""Every JSON route with a task id, on both sides."""


@pytest.mark.parametrize(("method", "route"), ROUTES, ids=[f"{m} {r}" for m, r in ROUTES])
def test_a_bad_task_id_is_no_such_task_on_every_route(
    live_server: ServerFactory, method: str, route: str
) -> None:
    server = live_server()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for bad in BAD_IDS:
            path = route.format(id=bad)
            response = client.request(method, path, json={"body": "a note"})
            assert response.status_code == 404, (path, response.text)
            assert response.headers["content-type"] == "application/json", path
            assert response.json() == {"error": "no such task"}, path


@pytest.mark.parametrize("bad", ["-1", "abc", "9" * 4301])
def test_a_bad_task_id_on_the_pages_is_their_404(live_server: ServerFactory, bad: str) -> None:
    server = live_server()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get(f"/tasks/{bad}").status_code == 404
        assert client.post(f"/tasks/{bad}/retry").status_code in (400, 404)  # CSRF first


def test_leading_zeros_still_spell_an_id_however_many() -> None:
    assert parse_task_id("007") == 7
    assert parse_task_id("0" * 5000 + "7") == 7
    with pytest.raises(TaskNotFound):
        parse_task_id("1" + "0" * 10)
