"""The one settings object both sides read.

Values come from, in order of precedence: environment variables, an optional
``.env`` file in the working directory, then the defaults of the environment
chosen by ``APP_ENV`` (``development``, ``testing`` or ``production``). The
parsing and validation are pydantic-settings'; this module only declares the
fields and derives the two dialects:

* :meth:`Settings.flask_config` -- Flask's upper-case ``app.config`` keys;
* :meth:`Settings.tornado_settings` -- Tornado's snake_case ``Application``
  settings.

Nothing else in the project reads the environment.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from config.defaults import DEFAULT_DATABASE_URL, DEFAULT_PORT, SERVICE_NAME
from config.secret_key import HOW_TO_MAKE_A_KEY, check_production_key

PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""The checkout's root directory (where ``manage.py`` lives)."""

INSTANCE_PATH = PROJECT_ROOT / "instance"
"""Flask's instance folder: local, unversioned files such as the SQLite database."""

Environment = Literal["development", "testing", "production"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
EventLoop = Literal["asyncio", "uvloop"]
LogFormat = Literal["json", "text"]

DEVELOPMENT_SECRET_KEY = "dev-only-insecure-secret-key-change-me"
"""The ``SECRET_KEY`` used when none is set outside production. Never secret."""

SESSION_COOKIE_NAME = f"{SERVICE_NAME}_session"
"""The name of the signed session cookie both sides read (``config.defaults.SERVICE_NAME``)."""


def default_database_url(environment: Environment) -> str:
    """Return the database URL used when ``DATABASE_URL`` is not set.

    :param environment: ``development``, ``testing`` or ``production``.
    :returns: ``config.defaults.DEFAULT_DATABASE_URL`` if the project set one,
        else ``sqlite:///<checkout>/instance/<environment>.db`` (absolute path,
        so the database does not move with the working directory).
    """
    if DEFAULT_DATABASE_URL is not None:
        return DEFAULT_DATABASE_URL
    return f"sqlite:///{INSTANCE_PATH / f'{environment}.db'}"


def default_reserved_threads(threads: int) -> int:
    """``RESERVED_THREADS`` when unset: ``max(1, threads // 8)``, at most ``threads - 1``.

    Native blocking calls are short (a database query: milliseconds), so a few threads
    keep them from waiting behind Flask views that may take seconds, and an eighth
    costs Flask little throughput (2 of the default 16 threads).  With one thread
    there is nothing to reserve: 0.

    :param threads: ``THREADS``, the shared executor's size (>= 1).
    :returns: how many of its threads Flask requests may not take.
    """
    return min(threads - 1, max(1, threads // 8))


class CutoverSettings(BaseSettings):
    """The three cut-over settings alone, read like :class:`Settings` (environment, ``.env``).

    SIGHUP reads only these (:func:`server.cutover.current_plan`), so that a bad value
    in any other setting (``THREADS=abc``, a missing ``SECRET_KEY`` in production)
    cannot block an emergency roll-back; :class:`Settings` inherits them.
    Their values are parsed against the route table by
    :meth:`server.cutover.CutoverPlan.parse`.
    """

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    flask_routes: str = Field(
        "",
        description="Ported native routes, by rule name, that step aside so Flask serves "
        "their paths again, e.g. order_detail,order_list (reloaded on SIGHUP).",
    )
    canary_routes: str = Field(
        "",
        description="name:percent,...: that share of clients (sticky) gets the native "
        "handler of a ported route, the rest Flask (reloaded on SIGHUP).",
    )
    shadow_routes: str = Field(
        "",
        description="name[:percent],...: GET/HEAD of these ported routes also run on the "
        "other side in the background and are compared; percent samples (default 100; "
        "reloaded on SIGHUP).",
    )


class Settings(CutoverSettings):
    """Validated configuration for the whole service.

    Each field is read from the environment variable of the same name in upper
    case (``PORT`` for :attr:`port`), case-insensitively, or from ``.env``.
    Invalid values raise :class:`pydantic.ValidationError`; use
    :func:`config.load_settings` to turn that into one line naming the
    variable. The model configuration (environment, then ``.env``) is
    :class:`CutoverSettings`'.
    """

    app_env: Environment = Field("development", description="Which environment's defaults apply.")
    secret_key: SecretStr | None = Field(
        None,
        description="Signs Flask sessions and CSRF tokens (both sides). Required in production, "
        "and checked there (config/secret_key.py): >= 32 bytes, random, in no file of the project.",
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL; default DEFAULT_DATABASE_URL (config/defaults.py), "
        "else a SQLite file under instance/.",
    )
    host: str = Field("127.0.0.1", description="Interface to listen on.")
    port: int = Field(DEFAULT_PORT, ge=0, le=65535, description="TCP port (0 picks a free one).")
    threads: int = Field(16, ge=1, le=1024, description="Worker threads of the shared executor.")
    reserved_threads: int | None = Field(
        None,
        ge=0,
        description="Threads of the shared executor Flask requests never take: native "
        "handlers' blocking calls (and other work) find one even while Flask views hold "
        "the rest; default max(1, THREADS // 8), at most THREADS - 1 (docs/wsgi-bridge.md).",
    )
    debug: bool | None = Field(
        None, description="Debug mode and autoreload; default on in development only."
    )
    autoreload: bool | None = Field(
        None, description="Restart on code changes; default on in development only."
    )
    log_level: LogLevel = Field("INFO", description="Root log level.")
    log_format: LogFormat | None = Field(
        None,
        description="Log lines as json (one object per line) or text (key=value); "
        "default json in production, text elsewhere (docs/observability.md).",
    )
    metrics_token: SecretStr | None = Field(
        None,
        description="Bearer token GET /metrics requires (Authorization: Bearer ...); "
        "unset: open in development and testing, off in production unless METRICS_PORT.",
    )
    metrics_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Serve /metrics only on this separate admin port (on METRICS_HOST), "
        "not on PORT.",
    )
    metrics_host: str = Field("127.0.0.1", description="Interface of the METRICS_PORT listener.")
    max_queue: int | None = Field(
        None,
        ge=0,
        description="Hard cap of WSGI requests waiting for a thread (memory bound); "
        "default the bridge's (64 x threads, docs/wsgi-bridge.md).",
    )
    queue_target: float = Field(
        0.1,
        gt=0,
        le=60,
        description="Seconds of queueing delay a WSGI request may wait for a thread "
        "before the bridge considers the queue standing (CoDel target).",
    )
    queue_interval: float = Field(
        0.5,
        ge=0,
        le=60,
        description="Seconds the queueing delay must stay above QUEUE_TARGET before new "
        "WSGI requests get 503 + Retry-After (CoDel interval).",
    )
    request_timeout: float | None = Field(
        None,
        gt=0,
        description="Seconds a WSGI request may take to start its response before the "
        "client gets 504; unset, empty or 0: no deadline.",
    )
    max_body_size: int = Field(
        100 * 1024 * 1024, ge=1, description="Largest request body, in bytes."
    )
    shutdown_timeout: float = Field(
        30.0,
        ge=0,
        description="Seconds in-flight requests and background work get to finish on SIGTERM.",
    )
    processes: int = Field(
        1,
        ge=0,
        le=1024,
        description="Server processes sharing the port (pre-forked); 0: one per CPU core.",
    )
    event_loop: EventLoop = Field(
        "asyncio", description="The event loop: asyncio, or uvloop (the uvloop extra)."
    )
    drain_grace: float | None = Field(
        None,
        ge=0,
        le=3600,
        description="Seconds between /readyz turning 503 and the listener closing on "
        "SIGTERM; default 5 in production, 0 elsewhere.",
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated IPs/CIDRs whose X-Forwarded-* headers are honoured.",
    )
    secret_key_fallbacks: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated previous SECRET_KEYs: cookies and CSRF tokens they "
        "signed are still accepted; new ones are signed with SECRET_KEY.",
    )
    hsts_seconds: int = Field(
        0,
        ge=0,
        description="Strict-Transport-Security max-age for https responses, seconds; 0: no HSTS.",
    )
    idle_timeout: float = Field(
        75.0,
        gt=0,
        description="Seconds a keep-alive connection may stay idle, and a request head "
        "may take to arrive, before the connection is closed.",
    )
    body_timeout: float = Field(
        120.0,
        gt=0,
        description="Seconds a request body may take to arrive, in all, before the "
        "connection is closed.",
    )
    flask_mount: str = Field(
        "", description="URL prefix the Flask app is mounted under, e.g. /legacy."
    )

    @field_validator("request_timeout", mode="before")
    @classmethod
    def _timeout_off(cls, value: Any) -> Any:
        # REQUEST_TIMEOUT= (empty), 0, "off" or "none" all mean no deadline.
        if isinstance(value, str) and value.strip().lower() in ("", "0", "off", "none"):
            return None
        if isinstance(value, (int, float)) and value == 0:
            return None
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_log_format(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value.strip().lower() or None
        return value

    @field_validator("metrics_token", "metrics_port", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        for item in value:
            ipaddress.ip_network(item, strict=False)  # ValueError names the bad item
        return value

    @field_validator("secret_key_fallbacks", mode="before")
    @classmethod
    def _split_fallbacks(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        # Fail here, naming the variable, rather than deep inside create_engine.
        if value is None:
            return value
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(
                "must be a SQLAlchemy URL, e.g. sqlite:///path/to/file.db or "
                "postgresql+psycopg://user@host/db"
            ) from None
        try:
            dialect = url.get_dialect()
        except NoSuchModuleError:
            raise ValueError(
                f"unknown database dialect {url.drivername!r} "
                "(expected e.g. sqlite or postgresql+psycopg)"
            ) from None
        try:
            dialect.import_dbapi()
        except ImportError as error:
            raise ValueError(
                f"the driver for {url.drivername!r} is not installed ({error})"
            ) from None
        return value

    @field_validator("event_loop")
    @classmethod
    def _check_event_loop(cls, value: str) -> str:
        if value == "uvloop" and importlib.util.find_spec("uvloop") is None:
            raise ValueError(
                "uvloop is not installed: pip install uvloop (the project's uvloop extra), "
                "or set EVENT_LOOP=asyncio"
            )
        return value

    @field_validator("flask_mount")
    @classmethod
    def _check_mount(cls, value: str) -> str:
        value = value.rstrip("/")
        if value and not value.startswith("/"):
            raise ValueError("must start with '/', e.g. /legacy")
        return value

    @model_validator(mode="after")
    def _reserve_below_threads(self) -> Settings:
        if self.reserved_threads is not None and self.reserved_threads >= self.threads:
            raise ValueError(
                f"RESERVED_THREADS: must be less than THREADS ({self.threads}), "
                f"got {self.reserved_threads}: Flask requests need at least one thread"
            )
        return self

    @property
    def reserved_thread_count(self) -> int:
        """``reserved_threads``, or when unset :func:`default_reserved_threads` of ``threads``.

        Derived on each read (not filled in at validation), so a copy with another
        ``threads`` (``model_copy(update=...)``, as tests make) gets its own default.
        """
        if self.reserved_threads is None:
            return default_reserved_threads(self.threads)
        return self.reserved_threads

    @property
    def bridge_threads(self) -> int:
        """Threads the WSGI bridge may occupy at once: ``threads`` minus the reserve (>= 1
        for validated settings)."""
        return self.threads - self.reserved_thread_count

    @model_validator(mode="after")
    def _observability_defaults(self) -> Settings:
        if self.log_format is None:
            self.log_format = "json" if self.app_env == "production" else "text"
        if self.metrics_port is not None and self.metrics_port == self.port:
            raise ValueError("METRICS_PORT: must differ from PORT")
        return self

    @model_validator(mode="after")
    def _environment_defaults(self) -> Settings:
        if self.secret_key is None:
            if self.app_env == "production":
                raise ValueError(
                    "SECRET_KEY: required when APP_ENV=production; "
                    f"make one with: {HOW_TO_MAKE_A_KEY}"
                )
            self.secret_key = SecretStr(DEVELOPMENT_SECRET_KEY)
        elif self.app_env == "production":
            check_production_key("SECRET_KEY", self.secret_key.get_secret_value(), PROJECT_ROOT)
            for index, fallback in enumerate(self.secret_key_fallbacks):
                variable = f"SECRET_KEY_FALLBACKS[{index}]"
                check_production_key(variable, fallback.get_secret_value(), PROJECT_ROOT)
        if self.database_url is None:
            self.database_url = default_database_url(self.app_env)
        if self.debug is None:
            self.debug = self.app_env == "development"
        if self.processes != 1:
            # Autoreload re-executes one process; a supervisor's children cannot follow it.
            if self.autoreload:
                raise ValueError(
                    f"AUTORELOAD: cannot be on with PROCESSES={self.processes}; "
                    "set AUTORELOAD=false (or PROCESSES=1 to develop with reloading)"
                )
            self.autoreload = False
        if self.autoreload is None:
            self.autoreload = self.app_env == "development"
        if self.drain_grace is None:
            # A load balancer needs a few probe periods to see /readyz fail;
            # elsewhere nothing is watching, so do not make every stop wait.
            self.drain_grace = 5.0 if self.app_env == "production" else 0.0
        return self

    @property
    def process_count(self) -> int:
        """How many server processes to run: ``processes``, or the CPU count when it is 0."""
        return self.processes or os.cpu_count() or 1

    def flask_config(self) -> dict[str, Any]:
        """Return Flask's dialect of these settings, for ``app.config.update``.

        :returns: a dict of upper-case Flask / Flask-SQLAlchemy keys
            (``SECRET_KEY``, ``SQLALCHEMY_DATABASE_URI``, ``DEBUG``, ``TESTING``,
            ``MAX_CONTENT_LENGTH`` ...), plus ``APP_ENV`` for code that needs to
            know the environment.
        """
        assert self.secret_key is not None
        secret_key = self.secret_key.get_secret_value()
        fallbacks = [key.get_secret_value() for key in self.secret_key_fallbacks]
        return {
            "APP_ENV": self.app_env,
            "SECRET_KEY": secret_key,
            # Flask 3.1 verifies sessions with these too (and signs with SECRET_KEY).
            "SECRET_KEY_FALLBACKS": fallbacks,
            # Flask-WTF reads one key; itsdangerous takes a list, newest last, signs with
            # the last and verifies with every one: CSRF tokens survive a rotation too.
            "WTF_CSRF_SECRET_KEY": [*fallbacks, secret_key] if fallbacks else secret_key,
            "HSTS_SECONDS": self.hsts_seconds,
            "SQLALCHEMY_DATABASE_URI": self.database_url,
            "DEBUG": bool(self.debug),
            "TESTING": self.app_env == "testing",
            "MAX_CONTENT_LENGTH": self.max_body_size,
            "SESSION_COOKIE_NAME": SESSION_COOKIE_NAME,
            "SESSION_COOKIE_HTTPONLY": True,
            "SESSION_COOKIE_SAMESITE": "Lax",
            "SESSION_COOKIE_SECURE": self.app_env == "production",
        }

    def tornado_settings(self) -> dict[str, Any]:
        """Return Tornado's dialect of these settings, for ``tornado.web.Application``.

        :returns: a dict of snake_case ``Application`` settings (``debug``,
            ``autoreload``, ``cookie_secret``, ``websocket_ping_interval`` ...).
            Handlers and ``log_function`` are added by the composition root.
        """
        assert self.secret_key is not None
        return {
            "debug": False,  # Tornado's debug also turns on its own error pages
            # Never Tornado's: Application(autoreload=True) would start the watcher
            # before the event loop runs. serve() starts it on the running loop.
            "autoreload": False,
            "serve_traceback": bool(self.debug),
            "cookie_secret": self.secret_key.get_secret_value(),
            # Tornado's own XSRF scheme stays off: native handlers check Flask-WTF's
            # token instead (tornado_handlers.mixins.CSRFMixin), one scheme for both sides.
            "xsrf_cookies": False,
            "hsts_seconds": self.hsts_seconds,
            "websocket_ping_interval": 20,
            "compress_response": False,
        }
