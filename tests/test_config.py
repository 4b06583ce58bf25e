"""The shared settings: environments, sources, the two dialects, and clear errors."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

import pytest
from flask import Flask

from config import ConfigError, load_settings
from config.defaults import DEFAULT_DATABASE_URL, DEFAULT_PORT, SERVICE_NAME
from config.settings import DEVELOPMENT_SECRET_KEY, INSTANCE_PATH


def test_development_defaults() -> None:
    settings = load_settings()
    assert settings.app_env == "development"
    assert settings.debug is True
    assert settings.autoreload is True
    embedded = f"sqlite:///{INSTANCE_PATH / 'development.db'}"
    assert settings.database_url == (DEFAULT_DATABASE_URL or embedded)
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == DEVELOPMENT_SECRET_KEY
    assert (settings.host, settings.port, settings.threads) == ("127.0.0.1", DEFAULT_PORT, 16)
    assert settings.max_queue is None  # the bridge decides (docs/wsgi-bridge.md)


def test_environment_variables_win_over_dotenv(monkeypatch: pytest.MonkeyPatch) -> None:
    Path(".env").write_text("PORT=9001\nTHREADS=3\nLOG_LEVEL=debug\n")
    monkeypatch.setenv("PORT", "9002")
    settings = load_settings()
    assert settings.port == 9002  # environment beats .env
    assert settings.threads == 3  # .env beats the default
    assert settings.log_level == "DEBUG"


def test_production_requires_a_real_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", "production")
    missing = r"^SECRET_KEY: required when APP_ENV=production; make one with: python -c "
    with pytest.raises(ConfigError, match=missing):
        load_settings()
    monkeypatch.setenv("SECRET_KEY", "short")
    with pytest.raises(ConfigError, match=r"SECRET_KEY: must be at least 32 bytes"):
        load_settings()
    monkeypatch.setenv("SECRET_KEY", secrets.token_urlsafe(48))
    settings = load_settings()
    assert settings.debug is False and settings.autoreload is False
    assert settings.flask_config()["SESSION_COOKIE_SECURE"] is True


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("PORT", "http", r"^PORT: Input should be a valid integer.*\(got 'http'\)$"),
        ("PORT", "70000", r"^PORT: Input should be less than or equal to 65535"),
        ("THREADS", "0", r"^THREADS: Input should be greater than or equal to 1"),
        ("APP_ENV", "prod", r"^APP_ENV: Input should be 'development', 'testing' or 'production'"),
        ("DEBUG", "maybe", r"^DEBUG: Input should be a valid boolean"),
        ("LOG_LEVEL", "loud", r"^LOG_LEVEL: Input should be 'DEBUG'"),
        ("TRUSTED_PROXIES", "10.0.0.1,not-an-ip", r"^TRUSTED_PROXIES: 'not-an-ip' does not"),
        ("FLASK_MOUNT", "legacy", r"^FLASK_MOUNT: must start with '/'"),
        (
            "SHUTDOWN_TIMEOUT",
            "-1",
            r"^SHUTDOWN_TIMEOUT: Input should be greater than or equal to 0",
        ),
        ("QUEUE_TARGET", "0", r"^QUEUE_TARGET: Input should be greater than 0"),
        ("QUEUE_TARGET", "soon", r"^QUEUE_TARGET: Input should be a valid number"),
        ("QUEUE_INTERVAL", "-0.5", r"^QUEUE_INTERVAL: Input should be greater than or equal to 0"),
        ("REQUEST_TIMEOUT", "-3", r"^REQUEST_TIMEOUT: Input should be greater than 0"),
        ("REQUEST_TIMEOUT", "5s", r"^REQUEST_TIMEOUT: Input should be a valid number"),
        ("MAX_QUEUE", "-1", r"^MAX_QUEUE: Input should be greater than or equal to 0"),
        (
            "RESERVED_THREADS",
            "-1",
            r"^RESERVED_THREADS: Input should be greater than or equal to 0",
        ),
        ("RESERVED_THREADS", "16", r"^RESERVED_THREADS: must be less than THREADS \(16\)"),
        ("RESERVED_THREADS", "some", r"^RESERVED_THREADS: Input should be a valid integer"),
    ],
)
def test_invalid_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=expected):
        load_settings()


def test_flask_and_tornado_dialects_come_from_one_object(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_KEY", "one-secret-for-both-sides")
    monkeypatch.setenv("DATABASE_URL", "sqlite:////tmp/elsewhere.db")
    monkeypatch.setenv("APP_ENV", "testing")
    settings = load_settings()
    flask = settings.flask_config()
    tornado = settings.tornado_settings()
    assert flask["SECRET_KEY"] == tornado["cookie_secret"] == "one-secret-for-both-sides"
    assert flask["SQLALCHEMY_DATABASE_URI"] == "sqlite:////tmp/elsewhere.db"
    assert flask["TESTING"] is True and flask["DEBUG"] is False
    assert tornado["autoreload"] is False
    assert "one-secret" not in repr(settings)  # SecretStr hides it


def test_trusted_proxies_parse_as_a_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.1, 192.168.0.0/16")
    assert load_settings().trusted_proxies == ["10.0.0.1", "192.168.0.0/16"]


def test_the_session_cookie_is_named_after_the_service() -> None:
    # Browsers send a host's cookies to all its ports: two services on one
    # host must not share a cookie name, or logging in to one logs out the other.
    assert load_settings().flask_config()["SESSION_COOKIE_NAME"] == f"{SERVICE_NAME}_session"


def test_a_generated_database_default_replaces_the_embedded_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = "postgresql+psycopg://service@db.internal/service"
    monkeypatch.setattr("config.settings.DEFAULT_DATABASE_URL", url)
    assert load_settings().database_url == url
    monkeypatch.setenv("DATABASE_URL", "sqlite:///elsewhere.db")
    assert load_settings().database_url == "sqlite:///elsewhere.db"  # the environment wins


def test_admission_and_deadline_settings_reach_the_bridge(monkeypatch: pytest.MonkeyPatch) -> None:
    from server.build import build_hybrid
    from wsgi_bridge.admission import DEFAULT_QUEUE_INTERVAL, DEFAULT_QUEUE_TARGET

    defaults = load_settings()
    # The service's defaults are the bridge's own, and the deadline is off.
    assert (defaults.queue_target, defaults.queue_interval) == (
        DEFAULT_QUEUE_TARGET,
        DEFAULT_QUEUE_INTERVAL,
    )
    assert defaults.request_timeout is None
    for off in ("", "0", "off"):
        monkeypatch.setenv("REQUEST_TIMEOUT", off)
        assert load_settings().request_timeout is None
    monkeypatch.setenv("REQUEST_TIMEOUT", "2.5")
    monkeypatch.setenv("QUEUE_TARGET", "0.25")
    monkeypatch.setenv("QUEUE_INTERVAL", "2")
    monkeypatch.setenv("MAX_QUEUE", "7")
    monkeypatch.setenv("THREADS", "3")
    hybrid = build_hybrid(load_settings(), features=())
    try:
        container = hybrid.container
        assert container.request_timeout == 2.5
        assert (container.admission.target, container.admission.interval) == (0.25, 2.0)
        assert container.max_workers == 2  # THREADS minus the default reserve of 1
        assert (container.max_queue, container.admission_limit) == (7, 9)
    finally:
        hybrid.close()


@pytest.mark.parametrize(
    ("threads", "reserved"),
    [("16", 2), ("4", 1), ("2", 1), ("1", 0), ("64", 8), ("1024", 128)],
)
def test_reserved_threads_default_to_an_eighth_at_least_one_below_threads(
    monkeypatch: pytest.MonkeyPatch, threads: str, reserved: int
) -> None:
    monkeypatch.setenv("THREADS", threads)
    settings = load_settings()
    assert settings.reserved_threads is None  # unset: derived from THREADS
    assert (settings.reserved_thread_count, settings.bridge_threads) == (
        reserved,
        int(threads) - reserved,
    )
    # A copy with other THREADS (as tests make) gets the default of its own THREADS.
    assert settings.model_copy(update={"threads": 16}).reserved_thread_count == 2


def test_reserved_threads_set_how_many_threads_flask_may_not_take(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from server.build import build_hybrid

    monkeypatch.setenv("THREADS", "6")
    for reserved, bridge in (("0", 6), ("5", 1)):
        monkeypatch.setenv("RESERVED_THREADS", reserved)
        hybrid = build_hybrid(load_settings(), features=())
        try:
            assert hybrid.container.max_workers == bridge
            assert hybrid.container.admission.workers == bridge
        finally:
            hybrid.close()
    monkeypatch.setenv("THREADS", "1")
    monkeypatch.setenv("RESERVED_THREADS", "1")
    with pytest.raises(ConfigError, match=r"^RESERVED_THREADS: must be less than THREADS \(1\)"):
        load_settings()


def test_features_own_pool_work_comes_out_of_the_bridges_share(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Flask views plus a feature's long work on the shared pool never take the reserve."""
    from app.feature import Feature
    from server.build import build_hybrid

    class Holding(Feature):
        name = "holding"

        def __init__(self, threads: int) -> None:
            self.threads = threads

        def pool_threads(self, flask_app: Flask) -> int:
            return self.threads

    monkeypatch.setenv("THREADS", "8")
    monkeypatch.setenv("RESERVED_THREADS", "2")
    for held, bridge in ((0, 6), (3, 3), (5, 1)):
        hybrid = build_hybrid(load_settings(), features=(Holding(held),))
        try:
            assert hybrid.container.max_workers == bridge
        finally:
            hybrid.close()
    assert "too small" not in caplog.text
    hybrid = build_hybrid(load_settings(), features=(Holding(6),))  # 8 - 2 - 6 = 0
    try:
        assert hybrid.container.max_workers == 1  # Flask keeps one thread, and is told
        assert "THREADS=8 is too small to keep RESERVED_THREADS=2" in caplog.text
    finally:
        hybrid.close()


def test_process_settings_and_their_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert (settings.processes, settings.event_loop, settings.drain_grace) == (1, "asyncio", 0)
    assert settings.process_count == 1
    monkeypatch.setenv("PROCESSES", "0")
    settings = load_settings()
    assert settings.process_count >= 1  # one per core
    assert settings.autoreload is False  # development's default gives way to processes
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", secrets.token_urlsafe(48))
    assert load_settings().drain_grace == 5  # a load balancer needs time to see /readyz
    monkeypatch.setenv("DRAIN_GRACE", "0.5")
    assert load_settings().drain_grace == 0.5


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"PROCESSES": "2", "AUTORELOAD": "true"}, r"^AUTORELOAD: cannot be on with PROCESSES=2"),
        ({"PROCESSES": "-1"}, r"^PROCESSES: Input should be greater than or equal to 0"),
        ({"EVENT_LOOP": "trio"}, r"^EVENT_LOOP: Input should be 'asyncio' or 'uvloop'"),
        ({"DRAIN_GRACE": "-1"}, r"^DRAIN_GRACE: Input should be greater than or equal to 0"),
        ({"LOG_FORMAT": "xml"}, r"^LOG_FORMAT: Input should be 'json' or 'text'"),
        ({"METRICS_PORT": "0"}, r"^METRICS_PORT: Input should be greater than or equal to 1"),
        ({"METRICS_PORT": "9100", "PORT": "9100"}, r"METRICS_PORT: must differ from PORT"),
    ],
)
def test_invalid_server_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], expected: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=expected):
        load_settings()


def test_uvloop_must_be_installed_to_be_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENT_LOOP", "uvloop")
    assert load_settings().event_loop == "uvloop"  # installed with the test extra
    monkeypatch.setitem(sys.modules, "uvloop", None)  # how Python spells "not importable"
    with pytest.raises(ConfigError, match=r"^EVENT_LOOP: .*uvloop is not installed"):
        load_settings()
