"""The feature seam: how a feature plugs into the skeleton, and the skeleton never imports it.

A *feature* is a package (say ``orders``: ``app/orders/`` for its Flask side,
``tornado_handlers/orders/`` for its native side) that offers one
:class:`Feature` object. The composition root lists the features in use in one
place, ``server/features.py``; everything else reaches a feature only through
the hooks below:

=====================  ==========================================================
hook                   what the feature does there
=====================  ==========================================================
:meth:`~Feature.init_app`      on the Flask app: blueprints (with their templates),
                               migrations (:func:`app.schema_migrations.add_migrations`),
                               error mappings (:func:`app.errors.map_exception`),
                               navigation links (:func:`app.nav.add_nav_link`),
                               shell context, ``app.extensions`` entries
:meth:`~Feature.native_rules`  native Tornado rules, matched before the Flask fallback
:meth:`~Feature.start`         on the IOLoop, after the start-up checks and before
                               the server listens (e.g. a recovery sweep)
:meth:`~Feature.stop`          on SIGTERM, once requests have drained and before the
                               thread pool shuts down (stop background work)
:meth:`~Feature.closed`        after the pool shut down (record what was cut short)
:meth:`~Feature.collectors`    Prometheus collectors ``GET /metrics`` runs at scrape
                               time (e.g. rows by state, read from the database)
:meth:`~Feature.worker`        a :class:`BackgroundWorker` for ``manage.py worker``
                               (e.g. queue consumers), or ``None``
=====================  ==========================================================

Removing a feature is deleting its folders and its line in ``server/features.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from flask import Flask
from pydantic_settings import BaseSettings
from tornado.routing import Rule
from tornado.web import Application

from config import Settings

if TYPE_CHECKING:
    from prometheus_client.registry import Collector


@dataclass(frozen=True)
class Shared:
    """What every native handler receives from the route table (``initialize(**kwargs)``).

    :ivar executor: the one shared thread pool (blocking work of native handlers).
    :ivar flask_app: the Flask app behind the bridge (its database, config, session).
    """

    executor: Executor
    flask_app: Flask

    def kwargs(self, **more: Any) -> dict[str, Any]:
        """Return the route kwargs dict: ``executor``, ``flask_app`` and ``more``.

        :param more: handler-specific keyword arguments of ``initialize``.
        """
        return {"executor": self.executor, "flask_app": self.flask_app, **more}


@dataclass(frozen=True)
class Runtime:
    """What a feature's lifecycle hooks see of one running server process.

    :ivar settings: the shared settings.
    :ivar executor: the shared thread pool.
    :ivar flask_app: the Flask app.
    :ivar application: the Tornado application (its ``settings`` included).
    """

    settings: Settings
    executor: Executor
    flask_app: Flask
    application: Application


@dataclass(frozen=True)
class WorkerOptions:
    """What ``python manage.py worker`` was asked for, handed to :meth:`Feature.worker`.

    :ivar threads: threads per worker process that run jobs (``--threads``, default ``THREADS``).
    :ivar queues: the queues to consume (``--queues``); empty means every queue
        the feature knows.
    """

    threads: int
    queues: tuple[str, ...] = ()


class BackgroundWorker(Protocol):
    """What a feature runs in a ``manage.py worker`` process (:meth:`Feature.worker`).

    :meth:`start` returns once the worker runs (its own threads do the work);
    :meth:`stop` is called once, on SIGTERM/SIGINT.
    """

    def describe(self) -> str:
        """One line for the start-up log: what it consumes, with how many threads."""
        ...

    def start(self) -> None:
        """Start consuming; raise an exception whose message says what is wrong to refuse."""
        ...

    def stop(self, timeout: float) -> None:
        """Stop consuming and let the jobs under way end or be handed back, within ``timeout`` s."""
        ...


class Feature:
    """A pluggable part of the service: subclass it and override what you need.

    Every hook has a do-nothing default, so a Flask-only feature overrides
    :meth:`init_app` alone, and a native-only one :meth:`native_rules`.

    :cvar name: a short identifier (``"orders"``); also the Alembic branch label
        of its migrations, if it has tables.
    :cvar settings: the feature's own settings models (``pydantic_settings.BaseSettings``
        subclasses read with :func:`config.load_feature_settings`), so the
        skeleton knows every variable in use (tests clear them all).
    :cvar packages: the dotted names of the packages that make up the feature
        (``("app.orders", "tornado_handlers.orders")``): deleting them and the
        feature's line in ``server/features.py`` removes it. Nothing outside
        them imports them, but ``server/features.py`` (``tests/test_architecture.py``).
    """

    name: ClassVar[str] = "feature"
    packages: ClassVar[tuple[str, ...]] = ()
    settings: ClassVar[tuple[type[BaseSettings], ...]] = ()

    def init_app(self, flask_app: Flask) -> None:
        """Register the feature on the Flask app (blueprints, errors, navigation ...).

        Called by :func:`app.create_app` after the skeleton's own registrations.
        """

    def native_rules(self, shared: Shared) -> Sequence[Rule]:
        """Return the feature's native rules (``tornado.web.url(...)``), in match order.

        :param shared: the dependencies to pass to handlers (``shared.kwargs()``).
        """
        return ()

    async def start(self, runtime: Runtime) -> None:
        """Start background work; runs on the IOLoop before the server listens."""

    async def stop(self, runtime: Runtime) -> None:
        """Stop background work on shutdown; requests have drained, the pool still runs.

        Must not block the IOLoop (use ``asyncio.to_thread`` for blocking calls).
        """

    async def closed(self, runtime: Runtime) -> None:
        """Clean up after the pool shut down (its threads ended or were given up on)."""

    def collectors(self, runtime: Runtime) -> Sequence[Collector]:
        """Return ``prometheus_client`` collectors for ``GET /metrics`` (server/metrics.py).

        Each scrape calls their ``collect()`` on a thread (never the IOLoop), so they
        may block briefly, e.g. count rows in the database; give them a ``describe()``
        returning the metric families without work.  Called once, when the server
        is built.

        :param runtime: the process's settings, executor, Flask app and application.
        """
        return ()

    def pool_threads(self, flask_app: Flask) -> int:
        """Threads of the shared executor this feature's own long work may hold at once.

        Work other than requests that runs on the shared pool for long (seconds
        or more: jobs run in the web process). The server takes them out of the
        bridge's share, so that Flask views plus this work never take the
        ``RESERVED_THREADS`` that native handlers' blocking calls rely on
        (``server.build``, docs/wsgi-bridge.md "The native lane").

        :param flask_app: this process's Flask app, after :meth:`init_app`.
        :returns: threads (>= 0); default 0.
        """
        return 0

    def worker(self, flask_app: Flask, options: WorkerOptions) -> BackgroundWorker | None:
        """Return what this feature runs in a ``manage.py worker`` process, or ``None``.

        Called in each worker process, after its Flask app is built. A feature
        whose jobs run elsewhere (or that has none) returns ``None``.

        :param flask_app: this process's Flask app.
        :param options: the command's ``--threads`` and ``--queues``.
        :raises config.ConfigError: the options do not fit the feature (e.g. an unknown queue).
        """
        return None

    def __repr__(self) -> str:
        return f"<Feature {self.name}>"
