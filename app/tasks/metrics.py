"""``tasks{status=...}``: the example's tasks by status, for ``GET /metrics``.

The feature object returns a :class:`TaskStatusCollector` from
:meth:`app.feature.Feature.collectors`; deleting the feature removes the metric.
"""

from __future__ import annotations

from collections.abc import Iterator

from flask import Flask
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.database import call_in_session
from app.tasks.models import Task, TaskStatus

NAME = "tasks"
DOCUMENTATION = "Tasks in the database, by status (counted at scrape time)."


class TaskStatusCollector(Collector):
    """Counts the rows of ``tasks`` by status, once per scrape.

    The database is shared by every server process, so the count is the same
    whichever process answers; it is never written to the multi-process files.

    .. warning:: ``collect`` queries the database: it runs on the scrape's thread,
       never the IOLoop (``server.metrics.MetricsHandler``).

    :param flask_app: the Flask app whose database holds the tasks.
    """

    def __init__(self, flask_app: Flask) -> None:
        self.flask_app = flask_app

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The metric family, without querying (``CollectorRegistry.register`` calls it)."""
        yield GaugeMetricFamily(NAME, DOCUMENTATION, labels=["status"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """One sample per status, 0 for a status no task has."""
        counts = call_in_session(self.flask_app, _count_by_status)
        family = GaugeMetricFamily(NAME, DOCUMENTATION, labels=["status"])
        for status in TaskStatus:
            family.add_metric([status.value], counts.get(status.value, 0))
        yield family


def _count_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(select(Task.status, func.count()).group_by(Task.status)).all()
    return {str(status): int(count) for status, count in rows}
