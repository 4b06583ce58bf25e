"""``manage.py`` as a user runs it: a real process, real arguments, real output."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from tests.support.cli import ServerProcess, environment, run


def test_routes_lists_both_sides_in_match_order(database_url: str) -> None:
    result = run("routes", env=environment(database_url))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["PATH", "METHODS", "SIDE", "HANDLER", "STATUS"]
    rows = [line.split() for line in lines[2:]]
    native = [row for row in rows if row[2] == "native"]
    flask = [row for row in rows if row[2] == "flask"]
    assert rows == native + flask  # native rules first: they are matched first
    assert native[:4] == [  # the skeleton's own rules come before any feature's
        ["/healthz", "GET", "native", "tornado_handlers.health.HealthHandler", "native-only"],
        ["/readyz", "GET", "native", "tornado_handlers.health.ReadyHandler", "native-only"],
        ["/api/me", "GET", "native", "tornado_handlers.account.MeHandler", "native-only"],
        [
            "/api/preferences",
            "GET,PUT",
            "native",
            "tornado_handlers.account.PreferencesHandler",
            "native-only",
        ],
    ]
    assert ["/", "GET", "flask", "public.index", "flask"] in flask
    assert ["/auth/login", "GET,POST", "flask", "auth.login", "flask"] in flask
    assert ["/auth/logout", "POST", "flask", "auth.logout", "flask"] in flask
    assert ["/static/<path:filename>", "GET", "flask", "static", "flask"] in flask


def test_routes_json_flags_shadowed_flask_routes(database_url: str) -> None:
    result = run("routes", "--json", env=environment(database_url))
    assert result.returncode == 0, result.stderr
    routes = json.loads(result.stdout)
    by_handler = {route["handler"]: route for route in routes}
    assert by_handler["public.index"]["side"] == "flask"
    assert by_handler["tornado_handlers.account.MeHandler"]["status"] == "native-only"
    assert {route["side"] for route in routes} == {"native", "flask"}
    fields = {"path", "methods", "side", "handler", "status", "shadowed_by", "twins", "unreachable"}
    fields.update({"name", "cutover"})
    for route in routes:
        assert set(route) == fields, route
        if route["status"] == "shadowed":
            assert route["shadowed_by"] in {r["path"] for r in routes if r["side"] == "native"}


def test_invalid_configuration_stops_with_one_clear_line(database_url: str) -> None:
    result = run("serve", env=environment(database_url, PORT="http"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "Error: invalid configuration: PORT: Input should be a valid integer, "
        "unable to parse string as an integer (got 'http')"
    )


def test_db_upgrade_and_current(database_url: str) -> None:
    env = environment(database_url)
    upgraded = run("db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    current = run("db", "current", env=env)
    assert current.returncode == 0, current.stderr
    assert re.search(r"^\w+ \(head\)$", current.stdout, re.MULTILINE), current.stdout


def test_serve_answers_then_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    """Development mode on a fresh SQLite file: created and migrated on first start."""
    database = tmp_path / "fresh" / "dev.db"
    env = environment(f"sqlite:///{database}", APP_ENV="development", PORT="0", THREADS="2")
    env["AUTORELOAD"] = "false"
    server = ServerProcess(env=env)
    try:
        base = f"http://127.0.0.1:{server.port()}"
        assert database.exists()
        assert httpx.get(f"{base}/").status_code == 200
        assert httpx.get(f"{base}/healthz").json()["status"] == "ok"
        status, _ = server.stop(timeout=20)
        assert status == 0
        assert "stopped" in server.log
    finally:
        server.close()


def test_db_upgrade_creates_the_sqlite_directory(tmp_path: Path) -> None:
    """A fresh clone has no instance/ folder; `db upgrade` must still work."""
    database = tmp_path / "not-yet" / "there" / "app.db"
    result = run("db", "upgrade", env=environment(f"sqlite:///{database}"))
    assert result.returncode == 0, result.stderr
    assert database.exists()


def test_a_sqlite_folder_that_cannot_be_made_is_one_clear_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run("serve", env=environment(f"sqlite:///{blocker}/service.db"))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: invalid configuration: DATABASE_URL: cannot create the folder of the "
        f"SQLite file, {blocker} (File exists)"
    )


def test_routes_json_names_each_rule(database_url: str) -> None:
    """``name`` is what ``native_url()`` (native rules) and ``url_for`` (Flask) take."""
    result = run("routes", "--json", env=environment(database_url))
    assert result.returncode == 0, result.stderr
    names = {(route["side"], route["path"]): route["name"] for route in json.loads(result.stdout)}
    assert names["native", "/healthz"] == "healthz"
    assert names["native", "/api/me"] == "me"
    assert names["flask", "/"] == "public.index"
