"""The route table: every URL of the service, in the order Tornado matches them.

The skeleton's native rules come first, then each feature's, and the last rule
hands everything else to the Flask app through the WSGI bridge. To port a Flask
route, add a native rule for the same path above the fallback: it wins from
then on (``manage.py routes`` flags the Flask route as shadowed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from tornado.routing import Rule
from tornado.web import url

from app.feature import Feature, Shared
from app.security_headers import security_headers
from server.checks import check_known_revisions
from tornado_handlers.account import MeHandler, PreferencesHandler
from tornado_handlers.health import HealthHandler, ReadyHandler
from tornado_handlers.readiness import Readiness
from wsgi_bridge import WSGIContainer, WSGIFallback, access_log_function


def make_routes(
    shared: Shared,
    container: WSGIContainer,
    features: Iterable[Feature],
    metrics_rules: Sequence[Rule] = (),
    log_function: Callable[[Any], None] = access_log_function,
) -> list[Rule]:
    """Return the rules: the skeleton's native ones, each feature's, the Flask fallback last.

    :param shared: what native handlers receive (the executor, the Flask app).
    :param container: the WSGI bridge wrapping ``shared.flask_app``.
    :param features: the features in use (``server.features.FEATURES``).
    :param metrics_rules: ``GET /metrics`` when the main port serves it
        (:func:`server.metrics.metrics_rules`).
    :param log_function: what the Flask fallback calls per request (the access line
        and the metrics; the Application's ``log_function`` does it for native ones).
    :returns: :class:`tornado.routing.Rule` objects for ``tornado.web.Application``.
    """
    flask_app = shared.flask_app
    readiness = Readiness(flask_app, container, lambda: not check_known_revisions(flask_app)[1])
    rules: list[Rule] = [
        url(r"/healthz", HealthHandler, shared.kwargs(container=container), name="healthz"),
        url(r"/readyz", ReadyHandler, shared.kwargs(readiness=readiness), name="readyz"),
        url(r"/api/me", MeHandler, shared.kwargs(), name="me"),
        url(r"/api/preferences", PreferencesHandler, shared.kwargs(), name="preferences"),
        *metrics_rules,
    ]
    for feature in features:
        rules.extend(feature.native_rules(shared))
    # Last: everything no native rule matched goes to Flask, through the bridge's fast
    # mount (no RequestHandler per request; access line as Application's log_function).
    # The security headers ride on the bridge's own answers (404/413/503/504) too.
    fallback = WSGIFallback(
        container, default_headers=security_headers(), log_function=log_function, side="flask"
    )
    rules.append(url(r".*", fallback, name="flask"))
    return rules
