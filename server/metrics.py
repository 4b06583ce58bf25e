"""Prometheus metrics: what both sides count, and ``GET /metrics`` that serves them.

The composition root makes one :class:`Metrics` per process
(:func:`server.build.build_hybrid`); it is fed from three places:

* the access line: ``Metrics.log_function`` is Tornado's ``log_function`` and the
  bridge mount's, so every request of either side is counted once, when its access
  line is written, as ``http_requests_total{side,route,method,status}`` and
  ``http_request_duration_seconds{side,route}``.  ``route`` is a pattern, never the
  raw path: the Tornado rule's regular expression for native handlers, Flask's
  ``request.url_rule.rule`` for the Flask side (set by :mod:`app.observability`,
  read by the bridge's ``AccessRecord``), ``<unmatched>`` when no Flask rule
  matched, ``<bridge>`` when the bridge answered without the app (503, 413 ...);
* samples, taken every :data:`SAMPLE_INTERVAL` seconds and before each scrape:
  ``executor_threads_busy``, ``wsgi_bridge_queue_length``,
  ``wsgi_bridge_requests_in_flight``, ``websockets_open`` and
  ``wsgi_bridge_requests_shed_total`` (the bridge's admission refusals, 503);
* the features' collectors (:meth:`app.feature.Feature.collectors`), run at scrape
  time on a thread (e.g. rows counted by state in the database).

Multi-process (``serve --processes N``): call :func:`prepare_multiprocess_dir`
in the parent before anything creates a metric, and :func:`child_exited` when a
child dies; each process then writes its values to files in
``PROMETHEUS_MULTIPROC_DIR`` and a scrape of any process reads them all
(``prometheus_client.multiprocess``): counters and histograms add up, gauges are
summed over live processes (``livesum``).

Who may scrape (:func:`metrics_rules`, :func:`start_admin_listener`): with
``METRICS_PORT``, only a separate listener on ``METRICS_HOST:METRICS_PORT``
serves ``/metrics``; otherwise the main port does, when ``METRICS_TOKEN`` is set or
the environment is not production.  When ``METRICS_TOKEN`` is set every scrape
needs ``Authorization: Bearer <token>``.  See docs/observability.md.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import tornado.httpserver
import tornado.ioloop
import tornado.netutil
import tornado.web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    values,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from tornado.routing import Rule

from app.security_headers import security_headers
from config import Settings
from wsgi_bridge import WSGIContainer, access_log_function, ensure_request_id
from wsgi_bridge.compat import busy_threads

__all__ = [
    "MULTIPROC_DIR_ENV",
    "Metrics",
    "MetricsHandler",
    "child_exited",
    "metrics_rules",
    "multiprocess_dir",
    "multiprocess_metrics",
    "prepare_multiprocess_dir",
    "start_admin_listener",
]

log = logging.getLogger("hybrid.metrics")

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""The variable ``prometheus_client`` reads to switch to multi-process mode."""

SAMPLE_INTERVAL = 1.0
"""Seconds between two samples of the gauges (threads busy, queue, WebSockets)."""

UNMATCHED = "<unmatched>"
"""Route label of a request no rule matched (Flask's 404/405 on an unknown path)."""

BRIDGE = "<bridge>"
"""Route label of a request the bridge answered without the app (503, 413, 504 ...)."""

METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
"""Methods counted by name; any other is counted as ``OTHER`` (bounded cardinality)."""


# ----------------------------------------------------------------- multi-process mode
def multiprocess_dir() -> str | None:
    """The ``PROMETHEUS_MULTIPROC_DIR`` in use, or None in single-process mode."""
    return os.environ.get(MULTIPROC_DIR_ENV) or None


def prepare_multiprocess_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """Switch this process (and the children it forks) to multi-process metrics.

    Call it in the parent before forking and before any :class:`Metrics` exists:
    it removes ``prometheus_client``'s value files (``*.db``) left in the directory
    by an earlier run, so their counts do not add up with this one (anything else
    in the directory is left alone), or creates the directory; sets
    ``PROMETHEUS_MULTIPROC_DIR`` and makes ``prometheus_client`` write every value
    created from now on to files there.

    :param path: the directory; default ``$PROMETHEUS_MULTIPROC_DIR`` when set,
        else a new temporary directory (:func:`multiprocess_metrics` removes it
        again at exit).
    :returns: the directory.
    :raises OSError: it cannot be created, or a value file cannot be removed.
    """
    given = path if path is not None else multiprocess_dir()
    directory = Path(given) if given is not None else Path(tempfile.mkdtemp(prefix="metrics-"))
    directory.mkdir(parents=True, exist_ok=True)
    for leftover in directory.glob("*.db"):
        leftover.unlink()
    os.environ[MULTIPROC_DIR_ENV] = str(directory)
    # prometheus_client chose its value class when it was imported; choose again.
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    return directory


@contextlib.contextmanager
def multiprocess_metrics() -> Iterator[Path]:
    """:func:`prepare_multiprocess_dir` for the length of a ``with`` block.

    A directory it had to create (``PROMETHEUS_MULTIPROC_DIR`` unset) is removed
    when the block ends; one the operator chose is kept (its value files are
    removed at the next start).  Forked children leave with ``os._exit`` and never
    run the clean-up.

    :raises OSError: as :func:`prepare_multiprocess_dir`.
    """
    temporary = multiprocess_dir() is None
    directory = prepare_multiprocess_dir()
    log.info("metrics of every process in %s%s", directory, " (removed at exit)" * temporary)
    try:
        yield directory
    finally:
        if temporary:
            shutil.rmtree(directory, ignore_errors=True)


def child_exited(pid: int) -> None:
    """Forget the live gauges of the dead process ``pid`` (its counters stay counted).

    The supervisor's ``on_child_exit(pid)`` callback; does nothing in
    single-process mode.
    """
    directory = multiprocess_dir()
    if directory is not None:
        multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


# ----------------------------------------------------------------- the metrics
class _Scrape:
    """What one scrape collects: this process's metrics (or every process's) and the
    features' collectors; the ``registry`` argument of ``generate_latest``."""

    def __init__(self, parts: Sequence[Collector]) -> None:
        self.parts = parts

    def collect(self) -> Iterator[Metric]:
        for part in self.parts:
            yield from part.collect()


class Metrics:
    """The metrics of one server process (see the module docstring for the names).

    Create it before the Tornado application (its :meth:`log_function` is the
    application's), then :meth:`attach` what it samples once everything is built.
    Each instance registers in a registry of its own, so tests may build several.

    :param log_function: the access-line writer it wraps; default
        :func:`wsgi_bridge.access_log_function`.
    """

    def __init__(self, log_function: Callable[[Any], None] = access_log_function) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._write_access_line = log_function
        registry = self.registry
        self.requests = Counter(
            "http_requests",
            "HTTP requests answered, by side (native or flask), route pattern, method and status.",
            ["side", "route", "method", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Seconds from the request line to the end of the response, by side and route.",
            ["side", "route"],
            registry=registry,
        )
        self.threads_busy = Gauge(
            "executor_threads_busy",
            "Threads of the shared executor running work (sampled).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.queue_length = Gauge(
            "wsgi_bridge_queue_length",
            "WSGI requests waiting for a thread (sampled).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.bridge_in_flight = Gauge(
            "wsgi_bridge_requests_in_flight",
            "WSGI requests admitted and not finished: running or waiting (sampled).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.websockets = Gauge(
            "websockets_open",
            "Open WebSocket connections (sampled).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.shed = Counter(
            "wsgi_bridge_requests_shed",
            "WSGI requests refused with 503 by the bridge's admission control.",
            registry=registry,
        )
        self._native_routes: dict[type, list[tuple[Any, str]]] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._container: WSGIContainer | None = None
        self._websockets: set[Any] = set()
        self._collectors: tuple[Collector, ...] = ()
        self._shed_seen = 0

    def attach(
        self,
        application: tornado.web.Application,
        executor: ThreadPoolExecutor,
        container: WSGIContainer,
        collectors: Iterable[Collector] = (),
    ) -> None:
        """Learn the native route patterns and what to sample (call once, after building).

        :param application: the Tornado application (its rules give the route
            labels; its ``settings["websockets"]`` the open WebSockets).
        :param executor: the shared pool (threads busy).
        :param container: the WSGI bridge (queue, in flight, shed).
        :param collectors: the features' ``prometheus_client`` collectors, run at
            scrape time on a thread.
        """
        self._executor = executor
        self._container = container
        self._websockets = application.settings.get("websockets", set())
        self._collectors = tuple(collectors)
        for rule in application.wildcard_router.rules:
            target = rule.target
            if isinstance(target, type) and issubclass(target, tornado.web.RequestHandler):
                self._native_routes.setdefault(target, []).append((rule.matcher, _pattern(rule)))

    # ------------------------------------------------------------ requests
    def log_function(self, handler: Any) -> None:
        """Write the access line, then count the request (IOLoop thread).

        :param handler: a finished ``RequestHandler`` or the bridge's ``AccessRecord``.
        """
        self._write_access_line(handler)
        self.observe(handler)

    def observe(self, handler: Any) -> None:
        """Count one finished request (see :meth:`log_function`)."""
        request = handler.request
        side: str = getattr(handler, "access_log_side", "native")
        route = self.route_of(handler)
        method = request.method if request.method in METHODS else "OTHER"
        self.requests.labels(side, route, method, str(handler.get_status())).inc()
        self.duration.labels(side, route).observe(request.request_time())

    def route_of(self, handler: Any) -> str:
        """The route label of a finished request: a pattern, never the raw path."""
        if hasattr(handler, "route"):  # the bridge's AccessRecord
            route = handler.route
            return route if isinstance(route, str) else BRIDGE
        candidates = self._native_routes.get(type(handler))
        if candidates is not None and len(candidates) == 1:
            return candidates[0][1]
        if candidates is None:  # a rule added after attach(): look in the live table
            rules = handler.application.wildcard_router.rules
            candidates = [(r.matcher, _pattern(r)) for r in rules if r.target is type(handler)]
        for matcher, label in candidates:
            if matcher.match(handler.request) is not None:
                return label
        return candidates[0][1] if candidates else UNMATCHED

    # ------------------------------------------------------------ samples
    def sample(self) -> None:
        """Set the gauges from the live objects (IOLoop thread)."""
        if self._executor is not None:
            self.threads_busy.set(busy_threads(self._executor))
        container = self._container
        if container is not None:
            self.queue_length.set(container.waiting)
            self.bridge_in_flight.set(container.in_flight)
            shed = container.admission.shed_count
            if shed > self._shed_seen:
                self.shed.inc(shed - self._shed_seen)
                self._shed_seen = shed
        self.websockets.set(len(self._websockets))

    def start_sampling(self) -> tornado.ioloop.PeriodicCallback:
        """Sample every :data:`SAMPLE_INTERVAL` seconds on the current IOLoop; stop it
        at shutdown (``.stop()``)."""
        sampler = tornado.ioloop.PeriodicCallback(self.sample, SAMPLE_INTERVAL * 1000)
        sampler.start()
        return sampler

    # ------------------------------------------------------------ exposition
    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition of every process's metrics and the features'.

        :param accept: the scraper's ``Accept`` header: OpenMetrics when it asks for
            it, else the Prometheus text format.
        :returns: the body and its ``Content-Type``.

        Blocking (reads files in multi-process mode, runs the features'
        collectors, which may query the database): call it off the IOLoop.
        """
        directory = multiprocess_dir()
        base: Collector
        if directory is not None:
            base = multiprocess.MultiProcessCollector(None, path=directory)  # type: ignore[no-untyped-call]
        else:
            base = self.registry
        encoder, content_type = choose_encoder(accept)
        return encoder(_Scrape((base, *self._collectors))), content_type


def _pattern(rule: Rule) -> str:
    regex = getattr(rule.matcher, "regex", None)
    if regex is None:
        return rule.name or UNMATCHED
    pattern: str = regex.pattern
    return pattern[:-1] if pattern.endswith("$") else pattern


# ----------------------------------------------------------------- GET /metrics
class MetricsHandler(tornado.web.RequestHandler):
    """``GET /metrics``: the Prometheus text format, or OpenMetrics when ``Accept`` asks.

    Route kwargs: ``metrics`` (the :class:`Metrics`) and ``token`` (the bearer
    token every request must send, or None for none).  Answers 401 with
    ``WWW-Authenticate: Bearer`` without the right ``Authorization`` header; the
    comparison is constant-time (``hmac.compare_digest``).  The exposition is
    built on a thread of the loop's default executor, not the shared pool, so a
    saturated pool does not hide its own metrics.
    """

    def initialize(self, metrics: Metrics, token: str | None = None) -> None:
        """Take the route kwargs (Tornado calls it per request)."""
        self.metrics = metrics
        self.token = token

    def set_default_headers(self) -> None:
        """``X-Request-ID`` and the security headers, as every other response has."""
        self.set_header("X-Request-ID", ensure_request_id(self.request))
        hsts = int(self.settings.get("hsts_seconds", 0))
        for name, value in security_headers(hsts, self.request.protocol == "https"):
            self.set_header(name, value)

    async def get(self) -> None:
        """Answer the scrape, or 401."""
        if self.token is not None and not _bearer_matches(
            self.request.headers.get("Authorization", ""), self.token
        ):
            self.set_status(401)
            self.set_header("WWW-Authenticate", 'Bearer realm="metrics"')
            self.finish("unauthorized\n")
            return
        self.metrics.sample()
        loop = tornado.ioloop.IOLoop.current()
        accept = self.request.headers.get("Accept", "")
        body, content_type = await loop.run_in_executor(None, self.metrics.render, accept)
        self.set_header("Content-Type", content_type)
        self.set_header("Cache-Control", "no-store")
        self.finish(body)


def _bearer_matches(header: str, token: str) -> bool:
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(credentials.strip().encode(), token.encode())


def _token(settings: Settings) -> str | None:
    return settings.metrics_token.get_secret_value() if settings.metrics_token else None


def metrics_rules(settings: Settings, metrics: Metrics) -> list[Rule]:
    """The ``/metrics`` rule of the main port, or none (see the module docstring).

    :param settings: ``metrics_port``, ``metrics_token`` and ``app_env`` decide.
    :param metrics: what the handler serves.
    :returns: ``[url("/metrics", MetricsHandler, ..., name="metrics")]`` when the
        main port serves metrics; ``[]`` when ``METRICS_PORT`` is set, or in
        production without ``METRICS_TOKEN`` (``/metrics`` then goes to Flask: 404).
    """
    token = _token(settings)
    if settings.metrics_port is not None or (token is None and settings.app_env == "production"):
        return []
    kwargs = {"metrics": metrics, "token": token}
    return [tornado.web.url(r"/metrics", MetricsHandler, kwargs, name="metrics")]


def start_admin_listener(
    settings: Settings, metrics: Metrics
) -> tornado.httpserver.HTTPServer | None:
    """Serve ``/metrics`` alone on ``METRICS_HOST:METRICS_PORT``, if ``METRICS_PORT`` is set.

    Its requests are neither logged nor counted (scrapes would drown the rest).
    In multi-process mode every process listens (``SO_REUSEPORT``) and any of
    them answers for all.

    :returns: the listening server (``stop()`` it at shutdown), or None.
    :raises OSError: the address is in use or not available.
    """
    if settings.metrics_port is None:
        return None
    application = tornado.web.Application(
        [(r"/metrics", MetricsHandler, {"metrics": metrics, "token": _token(settings)})],
        log_function=lambda handler: None,
    )
    sockets = tornado.netutil.bind_sockets(
        settings.metrics_port,
        settings.metrics_host,
        reuse_port=multiprocess_dir() is not None,
    )
    server = tornado.httpserver.HTTPServer(application)
    server.add_sockets(sockets)
    return server
