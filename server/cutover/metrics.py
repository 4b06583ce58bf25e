"""The cut-over's Prometheus metrics, in the process's registry (``server.metrics.Metrics``).

=====================================  =================================================
``cutover_requests_total``             requests of a ported route, by ``route`` (rule
                                       name) and the ``side`` that served it
``cutover_native_percent``             the share of clients the native handler serves,
                                       by ``route``: 100 native, 0 switched back, else
                                       a canary
``cutover_shadow_percent``             the share of safe requests shadowed, by ``route``
``shadow_comparisons_total``           shadow runs compared, by ``route`` and ``result``:
                                       ``match``, ``mismatch`` or ``error`` (the shadow
                                       could not run or be compared; a view or handler
                                       that raises answers 500: a ``mismatch``)
``shadow_skipped_total``               sampled requests not shadowed, by ``route`` and
                                       ``reason``: ``busy`` (no idle thread: real traffic
                                       first), ``too_large`` (a body over the capture
                                       limit), ``incomplete`` (the primary response did
                                       not finish), ``unsupported`` (the connection
                                       cannot be observed)
=====================================  =================================================

Labels are bounded: ``route`` is a rule name of the ported routes, the rest fixed sets.
With several processes the counters add up; the gauges show the most recent value
(every process follows the same settings, and SIGHUP reaches them all).
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge

from server.cutover.plan import CutoverPlan, Side

COMPARISON_RESULTS = ("match", "mismatch", "error")
"""The values of ``shadow_comparisons_total``'s ``result`` label."""

SKIP_REASONS = ("busy", "too_large", "incomplete", "unsupported")
"""The values of ``shadow_skipped_total``'s ``reason`` label."""


class CutoverMetrics:
    """The counters and gauges of the cut-over (names in the module docstring).

    :param registry: the registry to register in (the process's :class:`server.metrics.Metrics`
        one); a fresh one by default (tests).
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = registry if registry is not None else CollectorRegistry()
        self.requests = Counter(
            "cutover_requests",
            "Requests of a ported route, by route name and the side that served them.",
            ["route", "side"],
            registry=registry,
        )
        self.native_percent = Gauge(
            "cutover_native_percent",
            "Share of clients, 0-100, the native handler serves, by route "
            "(100 native, 0 switched back to Flask, else a canary).",
            ["route"],
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.shadow_percent = Gauge(
            "cutover_shadow_percent",
            "Share of safe requests, 0-100, also run on the other side and compared, by route.",
            ["route"],
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.comparisons = Counter(
            "shadow_comparisons",
            "Shadow runs compared with the primary response, by route and result "
            "(match, mismatch, error).",
            ["route", "result"],
            registry=registry,
        )
        self.skipped = Counter(
            "shadow_skipped",
            "Sampled requests not shadowed, by route and reason "
            "(busy, too_large, incomplete, unsupported).",
            ["route", "reason"],
            registry=registry,
        )

    def show(self, plan: CutoverPlan, routes: Iterable[str]) -> None:
        """Set the gauges of every ported route in ``routes`` from ``plan``."""
        for name in routes:
            route = plan.route(name)
            self.native_percent.labels(name).set(route.native_percent)
            self.shadow_percent.labels(name).set(route.shadow_percent)

    def routed(self, route: str, side: Side) -> None:
        """Count a request of ``route`` served by ``side`` (IOLoop thread)."""
        self.requests.labels(route, side).inc()

    def compared(self, route: str, result: str) -> None:
        """Count a shadow comparison; ``result`` is one of :data:`COMPARISON_RESULTS`."""
        self.comparisons.labels(route, result).inc()

    def skip(self, route: str, reason: str) -> None:
        """Count a sampled request not shadowed; ``reason`` is one of :data:`SKIP_REASONS`."""
        self.skipped.labels(route, reason).inc()
