"""``manage.py routes --stats``: the cut-over's counts, read from a running server's ``/metrics``.

The server counts (:mod:`server.cutover.metrics`); this module only reads: it
scrapes ``GET /metrics`` over HTTP (:func:`scrape`), parses the Prometheus text
format with ``prometheus_client.parser`` and sums the samples per ported route
(:func:`summarize`), whatever other labels they carry, so the figures of every
process of a ``serve --processes N`` add up as the scrape shows them.

Where it reads (:func:`metrics_url`), as ``server.metrics`` serves: the main port
(``http://HOST:PORT/metrics``), or ``METRICS_HOST:METRICS_PORT`` when ``METRICS_PORT``
is set; with ``Authorization: Bearer <METRICS_TOKEN>`` when the token is set.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from config import Settings
from server.cutover.metrics import COMPARISON_RESULTS
from server.cutover.plan import RoutePlan

__all__ = [
    "RouteStats",
    "StatsError",
    "format_stats",
    "metrics_url",
    "scrape",
    "stats_json",
    "summarize",
]

SCRAPE_TIMEOUT = 10.0
"""Seconds to wait for the server's answer (connecting and reading)."""

_WILDCARDS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}
"""A listening address that is no address to connect to, and the loopback one to use."""


class StatsError(Exception):
    """The metrics could not be read; ``str(error)`` is one line naming the URL and why."""


@dataclass(frozen=True)
class RouteStats:
    """The cut-over figures of one ported route, as the server's metrics show them.

    :ivar route: the native rule's name.
    :ivar native_percent: ``cutover_native_percent``: 100 native, 0 switched back
        to Flask, else a canary; ``None`` when the gauge is missing.
    :ivar shadow_percent: ``cutover_shadow_percent``: the share of safe requests
        shadowed, 0 none; ``None`` when the gauge is missing.
    :ivar native: requests the native handler served (``cutover_requests_total``).
    :ivar flask: requests Flask served.
    :ivar match: shadow runs that matched the primary (``shadow_comparisons_total``).
    :ivar mismatch: shadow runs that differed.
    :ivar error: shadow runs that raised or could not run.
    :ivar skipped: sampled requests not shadowed, by reason (``shadow_skipped_total``).
    """

    route: str
    native_percent: float | None = None
    shadow_percent: float | None = None
    native: int = 0
    flask: int = 0
    match: int = 0
    mismatch: int = 0
    error: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def state(self) -> str:
        """``native``, ``flask``, ``canary 20%``, with ``+ shadow``, as ``manage.py routes``
        says it (:attr:`RoutePlan.state`); ``unknown`` without the native gauge."""
        if self.native_percent is None:
            return "unknown"
        return RoutePlan(self.route, self.native_percent, self.shadow_percent or 0.0).state

    @property
    def skipped_total(self) -> int:
        """Sampled requests not shadowed, whatever the reason."""
        return sum(self.skipped.values())

    def as_dict(self) -> dict[str, Any]:
        """The row as JSON-ready data: the fields, ``state`` and ``skipped_total``."""
        return {
            "route": self.route,
            "state": self.state,
            "native_percent": self.native_percent,
            "shadow_percent": self.shadow_percent,
            "native": self.native,
            "flask": self.flask,
            "match": self.match,
            "mismatch": self.mismatch,
            "error": self.error,
            "skipped": dict(sorted(self.skipped.items())),
            "skipped_total": self.skipped_total,
        }


def metrics_url(settings: Settings) -> str:
    """The URL of the server's ``/metrics`` under ``settings`` (see the module docstring).

    A wildcard listening address (``0.0.0.0``, ``::``) is read on the loopback one.

    :param settings: ``HOST``, ``PORT``, ``METRICS_HOST``, ``METRICS_PORT``.
    :returns: e.g. ``http://127.0.0.1:8000/metrics``.
    """
    if settings.metrics_port is not None:
        host, port = settings.metrics_host, settings.metrics_port
    else:
        host, port = settings.host, settings.port
    host = _WILDCARDS.get(host, host)
    if ":" in host:  # an IPv6 literal (RFC 3986 section 3.2.2)
        host = f"[{host}]"
    return f"http://{host}:{port}/metrics"


def scrape(url: str, token: str | None = None, timeout: float = SCRAPE_TIMEOUT) -> str:
    """``GET url`` and return the body: the Prometheus text format.

    No proxy is used (the server is usually on this host) and redirects are not followed.

    :param url: the metrics URL (``http`` or ``https``); a bare ``http://host:port``
        gets ``/metrics``.
    :param token: sent as ``Authorization: Bearer <token>`` (``METRICS_TOKEN``); ``None``
        sends no header.
    :param timeout: seconds to wait for the connection and the answer.
    :raises StatsError: one line: not reachable, no answer in time, or an answer
        other than 200 (401: the token; 404: no ``/metrics`` on that port).
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise StatsError(f"--url {url!r}: expected http://host:port/metrics")
    if parts.path in ("", "/"):
        url = urllib.parse.urlunsplit(parts._replace(path="/metrics"))
    request = urllib.request.Request(url, headers={"Accept": "text/plain"})
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
    try:
        with opener.open(request, timeout=timeout) as response:
            body: bytes = response.read()
    except urllib.error.HTTPError as error:
        error.close()
        raise StatsError(_http_error(url, error.code, token)) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise StatsError(
            f"cannot read the metrics at {url}: {reason} (is the server running there? "
            "--url, or the PORT / METRICS_PORT it was started with, says where)"
        ) from None
    return body.decode("utf-8", errors="replace")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Answer a redirect as the error it is here (a metrics URL does not move)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _http_error(url: str, status: int, token: str | None) -> str:
    if status == 401:
        fix = (
            "METRICS_TOKEN is not the server's token"
            if token is not None
            else "set METRICS_TOKEN to the server's token"
        )
        return f"{url} answered 401 Unauthorized: {fix}"
    if status == 404:
        return (
            f"{url} answered 404 Not Found: that port serves no /metrics (with METRICS_PORT "
            "set the metrics are on METRICS_HOST:METRICS_PORT; in production the main port "
            "serves them only with METRICS_TOKEN)"
        )
    return f"{url} answered {status}: expected 200 and the metrics"


def summarize(exposition: str) -> list[RouteStats]:
    """Sum the cut-over metrics of a scrape per ported route.

    :param exposition: the Prometheus text format (``GET /metrics`` without an
        OpenMetrics ``Accept``).
    :returns: one :class:`RouteStats` per route named by any ``cutover_*`` or
        ``shadow_*`` sample, sorted by name; empty when there is none.
    :raises StatsError: the text is not in the Prometheus text format.
    """
    rows: dict[str, dict[str, Any]] = {}

    def row(route: str) -> dict[str, Any]:
        return rows.setdefault(route, {"skipped": {}})

    try:
        families = list(text_string_to_metric_families(exposition))
    except ValueError as error:
        raise StatsError(f"the answer is not in the Prometheus text format: {error}") from None
    for family in families:
        for sample in family.samples:
            route = sample.labels.get("route")
            if route is None:
                continue
            value = sample.value
            if sample.name == "cutover_native_percent":
                row(route)["native_percent"] = value
            elif sample.name == "cutover_shadow_percent":
                row(route)["shadow_percent"] = value
            elif sample.name == "cutover_requests_total":
                side = sample.labels.get("side")
                if side in ("native", "flask"):
                    counts = row(route)
                    counts[side] = counts.get(side, 0) + round(value)
            elif sample.name == "shadow_comparisons_total":
                result = sample.labels.get("result")
                if result in COMPARISON_RESULTS:
                    counts = row(route)
                    counts[result] = counts.get(result, 0) + round(value)
            elif sample.name == "shadow_skipped_total":
                reason = sample.labels.get("reason", "")
                skipped = row(route)["skipped"]
                skipped[reason] = skipped.get(reason, 0) + round(value)
    return [RouteStats(route, **values) for route, values in sorted(rows.items())]


STATS_HEADER = ("ROUTE", "STATE", "NATIVE", "FLASK", "MATCH", "MISMATCH", "ERROR", "SKIPPED")
"""The columns of :func:`format_stats`."""


def format_stats(stats: Iterable[RouteStats]) -> str:
    """Render the rows as an aligned text table, numbers right-aligned.

    :param stats: the rows (:func:`summarize`).
    :returns: the table; a header and a rule alone when there is no row.
    """
    rows = [STATS_HEADER] + [
        (
            s.route,
            s.state,
            str(s.native),
            str(s.flask),
            str(s.match),
            str(s.mismatch),
            str(s.error),
            str(s.skipped_total),
        )
        for s in stats
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(STATS_HEADER))]
    lines = [
        "  ".join(
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def stats_json(stats: Iterable[RouteStats]) -> str:
    """The rows as a JSON array (``--json``), one object per route (:meth:`RouteStats.as_dict`)."""
    return json.dumps([s.as_dict() for s in stats], indent=2)
