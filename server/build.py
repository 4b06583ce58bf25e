"""Build one server process: one settings object, one executor, both sides wired up.

:func:`build_hybrid` is the only place that creates the shared
:class:`~concurrent.futures.ThreadPoolExecutor` and hands it to the WSGI
bridge, the native handlers, the Flask app and the features.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass

import tornado.web
import tornado.websocket
from flask import Flask

from app import create_app
from app.feature import Feature, Runtime, Shared
from app.native_urls import attach_native_urls
from config import Settings, check_unknown_variables
from server.cutover import Cutover
from server.cutover.metrics import CutoverMetrics
from server.cutover.shadow import ShadowRunner
from server.features import FEATURES
from server.metrics import Metrics, metrics_rules
from server.routes import make_routes
from tornado_handlers.in_flight import InFlight
from wsgi_bridge import WSGIContainer

log = logging.getLogger(__name__)

FlaskFactory = Callable[[Settings, Executor, Iterable[Feature]], Flask]
"""``create_app(settings, executor, features) -> Flask``: how the Flask app is made."""


@dataclass
class Hybrid:
    """Everything one server process runs, built by :func:`build_hybrid`.

    :ivar settings: the shared settings.
    :ivar executor: the shared thread pool (``settings.threads`` threads named
        ``worker-N``); shut it down after the server stops.
    :ivar flask_app: the Flask app behind the bridge.
    :ivar container: the WSGI bridge running ``flask_app`` on ``executor``.
    :ivar application: the Tornado application: native rules, then the fallback.
        Its settings hold ``in_flight`` (native requests in flight),
        ``websockets`` (the open WebSocket handlers, closed at shutdown) and
        ``draining`` (a :class:`threading.Event` set when the shutdown begins;
        ``/readyz`` answers 503 from then on).
    :ivar features: the features wired in, in order.
    :ivar metrics: this process's Prometheus metrics (:mod:`server.metrics`).
    :ivar cutover: which side serves each ported route (``FLASK_ROUTES``,
        ``CANARY_ROUTES``, ``SHADOW_ROUTES``; reloaded on SIGHUP): :mod:`server.cutover`.
    """

    settings: Settings
    executor: ThreadPoolExecutor
    flask_app: Flask
    container: WSGIContainer
    application: tornado.web.Application
    features: Sequence[Feature]
    metrics: Metrics
    cutover: Cutover

    @property
    def runtime(self) -> Runtime:
        """What the features' lifecycle hooks receive."""
        return Runtime(self.settings, self.executor, self.flask_app, self.application)

    @property
    def websockets(self) -> set[tornado.websocket.WebSocketHandler]:
        """The WebSocket connections open now (IOLoop thread only)."""
        sockets: set[tornado.websocket.WebSocketHandler] = self.application.settings["websockets"]
        return sockets

    @property
    def draining(self) -> threading.Event:
        """Set once the graceful stop begins (``/readyz`` then answers 503); thread-safe."""
        event: threading.Event = self.application.settings["draining"]
        return event

    def close(self, wait: bool = True) -> None:
        """Shut the executor down (queued work is cancelled).

        :param wait: block until running work finishes.
        """
        self.executor.shutdown(wait=wait, cancel_futures=True)


def bridge_threads(settings: Settings, flask_app: Flask, features: Sequence[Feature]) -> int:
    """Threads of the shared pool the WSGI bridge may occupy at once.

    ``THREADS - RESERVED_THREADS`` less what features' own long work may hold
    (:meth:`app.feature.Feature.pool_threads`, e.g. a feature's background jobs run
    in this process): Flask views and that work together never take the reserve.
    At least 1: where the pool is too small for that (``THREADS=2`` with one job
    thread), Flask keeps one thread and a WARNING says the reserve is not kept.

    :param settings: the shared settings (``threads``, ``reserved_threads``).
    :param flask_app: the Flask app, its features initialised.
    :param features: the features wired in.
    :returns: threads (>= 1).
    """
    held = sum(feature.pool_threads(flask_app) for feature in features)
    share = settings.bridge_threads - held
    if share < 1:
        log.warning(
            "THREADS=%d is too small to keep RESERVED_THREADS=%d for native handlers "
            "besides %d thread(s) held by features' work and one for Flask: native "
            "blocking calls may wait behind Flask views; raise THREADS",
            settings.threads,
            settings.reserved_thread_count,
            held,
        )
        return 1
    return share


def build_hybrid(
    settings: Settings,
    create_flask_app: FlaskFactory = create_app,
    features: Sequence[Feature] = FEATURES,
    executor: ThreadPoolExecutor | None = None,
) -> Hybrid:
    """Create the executor, the Flask app, the bridge and the Tornado application.

    :param settings: the shared settings.
    :param create_flask_app: the Flask application factory, called with the
        settings, the shared executor and ``features``; default
        :func:`app.create_app` (tests pass a wrapper that adds views).
    :param features: the features to wire in; default ``server.features.FEATURES``.
    :param executor: the shared pool to use; default a new one of
        ``settings.threads`` threads (tests pass their own).
    :returns: the :class:`Hybrid`; nothing is listening yet.
    :raises config.ConfigError: if a feature's settings are invalid, (in
        production) a variable looks like a setting but is none
        (:func:`config.check_unknown_variables`), or the cut-over settings name
        what the route table cannot honour (:mod:`server.cutover.plan`).
    """
    check_unknown_variables(settings, (model for f in features for model in f.settings))
    if executor is None:
        executor = ThreadPoolExecutor(settings.threads, thread_name_prefix="worker")
    flask_app = create_flask_app(settings, executor, features)
    container = WSGIContainer(
        flask_app,
        executor,
        # Flask never takes the reserve, nor the threads features' own work may hold:
        # native blocking calls never queue behind it.
        max_workers=bridge_threads(settings, flask_app, features),
        max_queue=settings.max_queue,
        queue_target=settings.queue_target,
        queue_interval=settings.queue_interval,
        request_timeout=settings.request_timeout,
        max_body_size=settings.max_body_size,
        script_name=settings.flask_mount,
        trusted_proxies=settings.trusted_proxies,
    )
    metrics = Metrics()
    application = tornado.web.Application(
        make_routes(
            Shared(executor, flask_app),
            container,
            features,
            metrics_rules(settings, metrics),
            metrics.log_function,
        ),
        log_function=metrics.log_function,
        in_flight=InFlight(),
        websockets=set(),
        draining=threading.Event(),
        **settings.tornado_settings(),
    )
    # Ported rules get the cut-over's matchers before the metrics learn the table.
    cutover_metrics = CutoverMetrics(metrics.registry)
    cutover = Cutover.from_settings(
        settings,
        application.wildcard_router.rules,
        flask_app,
        cutover_metrics,
        shadow=ShadowRunner(application, flask_app, container, executor, cutover_metrics),
    )
    # Flask templates' native_url() reverses names with this very route table.
    attach_native_urls(flask_app, application.reverse_url)
    hybrid = Hybrid(
        settings, executor, flask_app, container, application, tuple(features), metrics, cutover
    )
    runtime = hybrid.runtime
    collectors = [c for feature in hybrid.features for c in feature.collectors(runtime)]
    metrics.attach(application, executor, container, collectors)
    return hybrid
