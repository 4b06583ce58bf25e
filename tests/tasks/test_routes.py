"""The example's routes in ``manage.py routes`` (``server.inventory``), the ported one flagged.

``GET /api/tasks/<id>`` is served natively (``TaskDetailHandler``) and still
exists in Flask (``tasks_api.detail``), shadowed.
"""

from __future__ import annotations

import json
from pathlib import Path

from flask import Flask

from config import Settings
from server.build import Hybrid, build_hybrid
from server.inventory import format_table, sample_path
from tests.support.cli import environment, run
from tests.support.routes import inventory, with_views


def test_routes_lists_the_example_on_both_sides(database_url: str) -> None:
    result = run("routes", env=environment(database_url))
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()[2:]]
    native = [row for row in rows if row[2] == "native"]
    flask = [row for row in rows if row[2] == "flask"]
    assert rows == native + flask
    assert [
        "/ws/tasks",
        "GET",
        "native",
        "tornado_handlers.tasks.progress.TaskProgressSocket",
        "native-only",
    ] in native
    assert ["/tasks", "GET", "flask", "tasks.index", "flask"] in flask
    assert ["/api/tasks", "GET", "flask", "tasks_api.index", "flask"] in flask
    assert ["/api/tasks", "POST", "flask", "tasks_api.create", "flask"] in flask
    assert ["/tasks/<task_id:task_id>", "GET", "flask", "tasks.detail", "flask"] in flask


def test_routes_json_lists_the_example_and_its_shadowed_route(database_url: str) -> None:
    result = run("routes", "--json", env=environment(database_url))
    assert result.returncode == 0, result.stderr
    routes = json.loads(result.stdout)
    by_handler = {route["handler"]: route for route in routes}
    assert by_handler["tasks.detail"]["side"] == "flask"
    assert by_handler["tasks_api.detail"]["status"] == "shadowed"
    for route in routes:
        if route["status"] == "shadowed":
            assert route["shadowed_by"] in {r["path"] for r in routes if r["side"] == "native"}


def test_the_ported_detail_is_flagged_on_both_sides(hybrid: Hybrid) -> None:
    routes = inventory(hybrid)
    native = routes["native", "tornado_handlers.tasks.ported.TaskDetailHandler"]
    assert native.path == "/api/tasks/([^/]+)"
    assert native.methods == ["GET"]  # HEAD and OPTIONS are left out on both sides
    assert (native.status, native.twins) == ("ported", ["tasks_api.detail"])
    flask = routes["flask", "tasks_api.detail"]
    assert (flask.status, flask.shadowed_by, flask.unreachable) == (
        "shadowed",
        "/api/tasks/([^/]+)",
        [],
    )


def test_neighbours_of_the_port_stay_on_flask(hybrid: Hybrid) -> None:
    routes = inventory(hybrid)
    for endpoint in ("tasks_api.index", "tasks_api.create", "tasks.detail"):
        assert routes["flask", endpoint].status == "flask", endpoint


def test_stats_notes_and_the_socket_are_native_only(hybrid: Hybrid) -> None:
    routes = inventory(hybrid)
    for handler in (
        "handlers.TaskStatsHandler",
        "handlers.TaskNotesHandler",
        "progress.TaskProgressSocket",
    ):
        assert routes["native", f"tornado_handlers.tasks.{handler}"].status == "native-only"


def test_under_a_mount_the_port_still_shadows(settings: Settings) -> None:
    built = build_hybrid(settings.model_copy(update={"flask_mount": "/legacy"}))
    try:
        routes = inventory(built, "/legacy")
        flask = routes["flask", "tasks_api.detail"]
        assert flask.path == "/legacy/api/tasks/<task_id:task_id>"
        assert (flask.status, flask.shadowed_by) == ("shadowed", "/legacy/api/tasks/([^/]+)")
    finally:
        built.close()


def add_post_only_stats(app: Flask) -> None:
    """A Flask ``POST /api/stats`` -- a method the native handler lacks."""
    app.add_url_rule("/api/stats", "legacy_stats", lambda: "", methods=["POST"])


def test_the_native_stats_hide_a_flask_post_of_the_same_path(settings: Settings) -> None:
    """Tornado routes by path: Flask's POST is unreachable (the native GET handler answers 405)."""
    built = build_hybrid(settings, with_views(add_post_only_stats))
    try:
        routes = inventory(built)
        flask = routes["flask", "legacy_stats"]
        assert (flask.status, flask.shadowed_by, flask.unreachable) == (
            "shadowed",
            "/api/stats",
            ["POST"],
        )
        table = format_table(list(routes.values()))
        assert "shadowed by /api/stats; POST get 405" in table
    finally:
        built.close()


def test_head_and_options_are_left_out_of_the_task_rows(hybrid: Hybrid) -> None:
    routes = inventory(hybrid)
    assert routes["native", "tornado_handlers.tasks.handlers.TaskNotesHandler"].methods == [
        "GET",
        "POST",
    ]
    assert routes["flask", "tasks_api.notes"].methods == ["GET"]


def test_the_task_id_converter_gets_sample_values(hybrid: Hybrid) -> None:
    """``<task_id:...>`` is an int converter: its sample path matches the native ``([^/]+)``."""
    rule = next(
        r for r in hybrid.flask_app.url_map.iter_rules() if r.endpoint == "tasks_api.detail"
    )
    assert sample_path(rule) == "/api/tasks/1"
    assert sample_path(rule, "/legacy") == "/legacy/api/tasks/1"


def test_the_command_reports_the_port(database_url: str) -> None:
    result = run("routes", "--json", env=environment(database_url))
    assert result.returncode == 0, result.stderr
    routes = {(r["side"], r["handler"]): r for r in json.loads(result.stdout)}
    assert routes["native", "tornado_handlers.tasks.ported.TaskDetailHandler"]["status"] == "ported"
    detail = routes["flask", "tasks_api.detail"]
    assert detail["status"] == "shadowed"
    assert detail["shadowed_by"] == "/api/tasks/([^/]+)"
    assert detail["unreachable"] == []
    table = run("routes", env=environment(database_url)).stdout
    assert "ported (tasks_api.detail)" in table
    assert "shadowed by /api/tasks/([^/]+)" in table


def detail_row(table: str) -> str:
    """The native ``task_detail`` row of ``manage.py routes``' table."""
    [row] = [line for line in table.splitlines() if "ported.TaskDetailHandler" in line]
    return row


def test_the_command_shows_the_cutover_state_from_the_environment(database_url: str) -> None:
    default = run("routes", env=environment(database_url))
    assert detail_row(default.stdout).endswith("ported (tasks_api.detail): native")
    switched = run("routes", env=environment(database_url, FLASK_ROUTES="task_detail"))
    assert switched.returncode == 0, switched.stderr
    assert detail_row(switched.stdout).endswith("ported (tasks_api.detail): flask")
    shadowed = run(
        "routes",
        "--json",
        env=environment(database_url, CANARY_ROUTES="task_detail:20", SHADOW_ROUTES="task_detail"),
    )
    assert shadowed.returncode == 0, shadowed.stderr
    states = {r["handler"]: r["cutover"] for r in json.loads(shadowed.stdout)}
    assert states["tornado_handlers.tasks.ported.TaskDetailHandler"] == "canary 20% + shadow"
    assert states["tasks_api.detail"] is None  # the Flask row: shadowed, no plan of its own


def test_the_command_reads_the_cutover_settings_from_dotenv(database_url: str) -> None:
    """As ``serve`` does (the working directory's ``.env``; the environment wins over it)."""
    Path(".env").write_text("CANARY_ROUTES=task_detail:35\n")
    from_file = run("routes", env=environment(database_url))
    assert from_file.returncode == 0, from_file.stderr
    assert detail_row(from_file.stdout).endswith("ported (tasks_api.detail): canary 35%")
    overridden = run("routes", env=environment(database_url, CANARY_ROUTES="task_detail:60"))
    assert detail_row(overridden.stdout).endswith("ported (tasks_api.detail): canary 60%")


def test_a_bad_cutover_setting_fails_routes_as_it_fails_serve(database_url: str) -> None:
    env = environment(database_url, PORT="0", CANARY_ROUTES="task_detail:120")
    routes = run("routes", env=env)
    serve = run("serve", "--no-reload", env=env)
    assert (routes.returncode, serve.returncode) == (1, 1)
    line = (
        "Error: invalid configuration: CANARY_ROUTES: 'task_detail:120': "
        "the percentage must be a number from 0 to 100"
    )
    assert routes.stderr.strip().splitlines() == [line]
    assert serve.stderr.strip().splitlines()[-1] == line
