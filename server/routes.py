"""The route table: every URL of the service, in the order Tornado matches them.

The skeleton's native rules come first, then each feature's, and the last rule
hands everything else to the Flask app through the WSGI bridge. To port a Flask
route, add a native rule for the same path above the fallback: it wins from
then on (``manage.py routes`` flags the Flask route as shadowed).
"""

from __future__ import annotations

from collections.abc import Iterable

from tornado.routing import Rule
from tornado.web import url

from app.feature import Feature, Shared
from app.security_headers import security_headers
from tornado_handlers.account import MeHandler, PreferencesHandler
from tornado_handlers.health import HealthHandler
from wsgi_bridge import WSGIContainer, WSGIFallback


def make_routes(
    shared: Shared, container: WSGIContainer, features: Iterable[Feature]
) -> list[Rule]:
    """Return the rules: the skeleton's native ones, each feature's, the Flask fallback last.

    :param shared: what native handlers receive (the executor, the Flask app).
    :param container: the WSGI bridge wrapping ``shared.flask_app``.
    :param features: the features in use (``server.features.FEATURES``).
    :returns: :class:`tornado.routing.Rule` objects for ``tornado.web.Application``.
    """
    rules: list[Rule] = [
        url(r"/healthz", HealthHandler, shared.kwargs(container=container), name="healthz"),
        url(r"/api/me", MeHandler, shared.kwargs(), name="me"),
        url(r"/api/preferences", PreferencesHandler, shared.kwargs(), name="preferences"),
    ]
    for feature in features:
        rules.extend(feature.native_rules(shared))
    # Last: everything no native rule matched goes to Flask, through the bridge's fast
    # mount (no RequestHandler per request; access line as Application's log_function).
    # The security headers ride on the bridge's own answers (404/413/503/504) too.
    fallback = WSGIFallback(container, default_headers=security_headers())
    rules.append(url(r".*", fallback, name="flask"))
    return rules
