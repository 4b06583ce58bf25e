"""Secret keys in production, key rotation on both sides, and unknown variables."""

from __future__ import annotations

import re
import secrets
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from config import ConfigError, load_settings
from config.secret_key import HOW_TO_MAKE_A_KEY, estimated_entropy_bits, find_in_project
from config.settings import DEVELOPMENT_SECRET_KEY, SESSION_COOKIE_NAME
from tests.support.cli import environment, run
from tests.support.login import csrf_token, meta_csrf_token, register_and_log_in
from tests.support.server import TEST_SECRET_KEY, ServerFactory
from tornado_handlers.flask_session import load_session

# ------------------------------------------------------------------ 1. keys in production


@pytest.mark.parametrize(
    ("key", "why"),
    [
        (DEVELOPMENT_SECRET_KEY, "is a published development key"),
        (TEST_SECRET_KEY, r"appears in the project's files \(tests/support/server\.py\)"),
        ("short-but-random-Q7x", "must be at least 32 bytes"),
        ("a" * 40, "has too little entropy"),
        ("abc" * 11, "has too little entropy"),
        ("0123-0123-0123-0123-0123-0123-0123", "has too little entropy"),
    ],
    ids=["development", "in-the-repository", "short", "one-character", "abc", "few-characters"],
)
def test_production_refuses_a_weak_or_published_key(
    monkeypatch: pytest.MonkeyPatch, key: str, why: str
) -> None:
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", key)
    with pytest.raises(ConfigError) as error:
        load_settings()
    message = str(error.value)
    assert message.startswith("SECRET_KEY: ")
    assert re.search(why, message), message
    assert message.endswith(f"make one with: {HOW_TO_MAKE_A_KEY}")
    assert key not in message  # never print the secret


def test_production_checks_every_fallback_key_too(monkeypatch: pytest.MonkeyPatch) -> None:
    good = secrets.token_urlsafe(48)
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", good)
    monkeypatch.setenv(
        "SECRET_KEY_FALLBACKS", f"{secrets.token_urlsafe(48)},{DEVELOPMENT_SECRET_KEY}"
    )
    with pytest.raises(ConfigError, match=r"^SECRET_KEY_FALLBACKS\[1\]: is a published"):
        load_settings()
    made = secrets.token_hex(32)  # the template's .env key: 64 hex digits
    monkeypatch.setenv("SECRET_KEY_FALLBACKS", made)
    settings = load_settings()
    assert settings.flask_config()["SECRET_KEY_FALLBACKS"] == [made]


def test_a_good_key_passes_and_the_estimate_is_documented() -> None:
    assert estimated_entropy_bits(secrets.token_urlsafe(48)) > 300
    assert 100 < estimated_entropy_bits(secrets.token_hex(16)) < 128
    key = secrets.token_urlsafe(48)
    assert load_settings(app_env="production", secret_key=key).secret_key == SecretStr(key)


def test_the_project_scan_skips_env_virtualenvs_and_binaries(tmp_path: Path) -> None:
    key = secrets.token_urlsafe(48)
    (tmp_path / ".env").write_text(f"SECRET_KEY={key}\n")  # the deployment's own key
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "x.py").write_text(key)
    (tmp_path / "blob.bin").write_bytes(b"\0" + key.encode())
    assert find_in_project(key, tmp_path) is None
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "deploy.md").write_text(f"SECRET_KEY={key}\n")
    assert find_in_project(key, tmp_path) == tmp_path / "docs" / "deploy.md"


def test_serve_refuses_the_published_development_key(migrated: str) -> None:
    env = environment(migrated, PORT="0", APP_ENV="production", SECRET_KEY=DEVELOPMENT_SECRET_KEY)
    result = run("serve", "--no-reload", env=env, timeout=30)
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: invalid configuration: SECRET_KEY: is a published"), last
    assert HOW_TO_MAKE_A_KEY in last


# ------------------------------------------------------------------ 2. rotation
def test_cookies_and_csrf_tokens_signed_with_the_previous_key_work_after_rotation(
    live_server: ServerFactory,
) -> None:
    old, new = secrets.token_urlsafe(48), secrets.token_urlsafe(48)
    before = live_server(secret_key=SecretStr(old))
    with closing(register_and_log_in(before)) as client:
        page = client.get("/").text
        old_token = meta_csrf_token(page)
        old_cookie = client.cookies[SESSION_COOKIE_NAME]

        # "Restart" with SECRET_KEY=new, SECRET_KEY_FALLBACKS=old (same database).
        after = live_server(secret_key=SecretStr(new), secret_key_fallbacks=[SecretStr(old)])
        client.base_url = httpx.URL(after.url)
        assert client.get("/api/me").status_code == 200  # native reads the old cookie
        assert 'id="current-user"' in client.get("/").text  # and Flask does
        changed = client.put(
            "/api/preferences", json={"theme": "dark"}, headers={"X-CSRFToken": old_token}
        )
        assert changed.status_code == 200, changed.text  # the old CSRF token, natively
        new_cookie = client.cookies[SESSION_COOKIE_NAME]
        assert new_cookie != old_cookie
        # New cookies are signed with the new key alone.
        new_only = after.hybrid.flask_app
        new_only.config["SECRET_KEY_FALLBACKS"] = []
        with new_only.app_context():
            assert load_session(new_only, new_cookie).get("theme") == "dark"
            assert load_session(new_only, old_cookie) == {}
        new_only.config["SECRET_KEY_FALLBACKS"] = [old]
        logout = client.post("/auth/logout", data={"csrf_token": old_token})
        assert logout.status_code == 302, logout.text  # the old CSRF token, in a Flask form
        assert client.get("/api/me").status_code == 401

    # Without the fallback, the old cookie is an anonymous visitor on both sides.
    forgotten = live_server(secret_key=SecretStr(new))
    cookies = {SESSION_COOKIE_NAME: old_cookie}
    assert httpx.get(forgotten.url + "/api/me", cookies=cookies).status_code == 401
    page = httpx.get(forgotten.url + "/auth/login", cookies=cookies).text
    assert 'id="current-user"' not in page and csrf_token(page)


# ------------------------------------------------------------------ 3. unknown variables
def test_unknown_variables_are_refused_in_production(migrated: str, tmp_path: Path) -> None:
    env = environment(
        migrated,
        PORT="0",
        APP_ENV="production",
        SECRET_KEY_FALLBAKS="x",  # a typo of SECRET_KEY_FALLBACKS
        FLASK_APP="manage.py",  # Flask's CLI's own: allowed
    )
    result = run("serve", "--no-reload", env=env, timeout=30)
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last == (
        "Error: invalid configuration: SECRET_KEY_FALLBAKS: not a setting of this service; "
        "did you mean SECRET_KEY_FALLBACKS?"
    )


def test_unknown_variables_are_a_warning_elsewhere(migrated: str, tmp_path: Path) -> None:
    (tmp_path / "cwd" / ".env").write_text("APP_THREADS=4\n")
    result = run("routes", env=environment(migrated, APP_ENV="testing"), timeout=30)
    assert result.returncode == 0, result.stderr
    assert "APP_THREADS: not a setting of this service; did you mean THREADS?" in result.stderr
