"""The route inventory: every route of both sides in one list, in match order.

Used by ``manage.py routes``. A Flask route whose path a native rule also
matches is *shadowed*: Tornado matches native rules first, so the native
handler serves it (the route has been ported). Native routes with no Flask twin
are marked ``native-only``.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import tornado.web
import tornado.websocket
from flask import Flask
from tornado.routing import PathMatches, Rule
from werkzeug.routing import FloatConverter, IntegerConverter, PathConverter, UUIDConverter
from werkzeug.routing import Rule as FlaskRule

from tornado_handlers.base import BaseHandler
from wsgi_bridge import WSGIFallbackHandler

if TYPE_CHECKING:  # server.cutover imports this module: no import at run time
    from server.cutover.plan import CutoverPlan

_SAMPLE_VALUES: tuple[tuple[type, str], ...] = (
    (IntegerConverter, "1"),
    (FloatConverter, "1.5"),
    (PathConverter, "a/b"),
    (UUIDConverter, "00000000-0000-0000-0000-000000000000"),
)
"""A value each kind of converter matches (subclasses of these too)."""
_CONVERTER = re.compile(r"<(?:(?P<converter>[a-zA-Z_]\w*)(?:\([^>]*\))?:)?(?P<name>\w+)>")


@dataclass
class Route:
    """One row of the inventory.

    :ivar path: the URL pattern as its side writes it (Tornado regex or Flask rule).
    :ivar methods: HTTP methods served, sorted; ``HEAD`` and ``OPTIONS``, which
        every route of both sides answers, are left out (:data:`AUTOMATIC_METHODS`).
    :ivar side: ``"native"`` (Tornado handler) or ``"flask"`` (through the bridge).
    :ivar handler: ``module.Class`` for native routes, the endpoint for Flask ones.
    :ivar status: ``"native-only"``, ``"ported"`` (a native route that shadows a
        Flask one), ``"shadowed"`` (a Flask route a native one hides) or ``"flask"``.
    :ivar shadowed_by: for a shadowed Flask route, the native path that hides it.
    :ivar twins: for a native route, the Flask endpoints it shadows.
    :ivar unreachable: for a shadowed Flask route, the methods its native
        shadow does not implement. Tornado routes by path alone, so such a
        request never reaches Flask: the native handler answers 405. Port
        those methods too, or the route loses them.
    :ivar name: the rule's name (``url(..., name=...)``, what ``native_url()``
        and ``reverse_url`` take) for a native route, the endpoint for a Flask
        one; ``None`` for an unnamed native rule.
    :ivar cutover: for a ported native route, which side serves it under the
        cut-over settings (:attr:`server.cutover.plan.RoutePlan.state`):
        ``"native"``, ``"flask"`` (switched back, ``FLASK_ROUTES``), ``"canary 20%"``,
        each with ``" + shadow"`` when shadowed; ``None`` for every other route,
        or when no plan was given.
    """

    path: str
    methods: list[str]
    side: str
    handler: str
    status: str = ""
    shadowed_by: str | None = None
    twins: list[str] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)
    name: str | None = None
    cutover: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return the row as JSON-ready data."""
        return asdict(self)


AUTOMATIC_METHODS = frozenset({"HEAD", "OPTIONS"})
"""Methods left out of every row: both sides answer them for every route
(Flask for every rule, :class:`~tornado_handlers.base.BaseHandler` for every
handler: ``HEAD`` where there is a ``GET``, ``OPTIONS`` always), so listing
them would say nothing."""


def handler_methods(handler: type[tornado.web.RequestHandler]) -> list[str]:
    """Return the HTTP methods ``handler`` implements, sorted, without :data:`AUTOMATIC_METHODS`.

    ``GET`` for WebSockets; :meth:`BaseHandler.implemented_methods
    <tornado_handlers.base.BaseHandler.implemented_methods>` for the service's
    handlers; for other handlers the methods they override.
    """
    if issubclass(handler, tornado.websocket.WebSocketHandler):
        return ["GET"]
    if issubclass(handler, BaseHandler):
        methods = set(handler.implemented_methods())
    else:
        methods = {
            method
            for method in handler.SUPPORTED_METHODS
            if getattr(handler, method.lower(), None)
            is not getattr(tornado.web.RequestHandler, method.lower(), None)
        }
    return sorted(methods - AUTOMATIC_METHODS)


def _native_pattern(rule: Rule) -> str:
    matcher = rule.matcher
    if isinstance(matcher, PathMatches):
        return matcher.regex.pattern.removesuffix("$")
    return repr(matcher)


def sample_path(rule: FlaskRule, mount: str = "") -> str:
    """Return a concrete path that ``rule`` matches (``/orders/1`` for ``/orders/<int:id>``).

    :param rule: a Werkzeug rule of the Flask app.
    :param mount: the prefix the Flask app is mounted under (``SCRIPT_NAME``).
    """

    converters = rule.map.converters if rule.map is not None else {}

    def fill(match: re.Match[str]) -> str:
        converter = converters.get(match.group("converter") or "default")
        for kind, value in _SAMPLE_VALUES:
            if isinstance(converter, type) and issubclass(converter, kind):
                return value
        return "x"

    return mount + _CONVERTER.sub(fill, rule.rule)


def build_inventory(
    rules: list[Rule], flask_app: Flask, mount: str = "", plan: CutoverPlan | None = None
) -> list[Route]:
    """List every route of both sides in the order requests are matched.

    :param rules: the Tornado rules (``server.routes.make_routes``).
    :param flask_app: the Flask app behind the fallback rule.
    :param mount: the prefix the Flask app is mounted under.
    :param plan: the cut-over plan in force (``Hybrid.cutover.plan``): each ported
        route's :attr:`Route.cutover` says what it makes of the route; ``None``
        leaves :attr:`Route.cutover` unset.
    :returns: native routes first (table order), then Flask routes sorted by path.
    """
    natives: list[tuple[re.Pattern[str] | None, Route]] = []
    for rule in rules:
        target = rule.target
        if inspect.isclass(target) and issubclass(target, WSGIFallbackHandler):
            continue
        if not (inspect.isclass(target) and issubclass(target, tornado.web.RequestHandler)):
            continue
        regex = rule.matcher.regex if isinstance(rule.matcher, PathMatches) else None
        route = Route(
            path=_native_pattern(rule),
            methods=handler_methods(target),
            side="native",
            handler=f"{target.__module__}.{target.__qualname__}",
            name=rule.name,
        )
        natives.append((regex, route))

    flask_routes: list[Route] = []
    for flask_rule in sorted(flask_app.url_map.iter_rules(), key=lambda r: r.rule):
        methods = sorted((flask_rule.methods or set()) - AUTOMATIC_METHODS)
        route = Route(
            path=mount + flask_rule.rule,
            methods=methods,
            side="flask",
            handler=flask_rule.endpoint,
            status="flask",
            name=flask_rule.endpoint,
        )
        concrete = sample_path(flask_rule, mount)
        for regex, native in natives:
            # Tornado picks the first rule whose *path* matches, whatever the
            # method: a native rule hides every method of the Flask route.
            if regex is not None and regex.match(concrete):
                route.status = "shadowed"
                route.shadowed_by = native.path
                route.unreachable = sorted(set(methods) - set(native.methods))
                native.twins.append(flask_rule.endpoint)
                break
        flask_routes.append(route)

    for _, native in natives:
        native.status = "ported" if native.twins else "native-only"
        if native.twins and plan is not None:
            native.cutover = plan.route(native.name).state if native.name else "native"
    return [native for _, native in natives] + flask_routes


def format_table(routes: list[Route]) -> str:
    """Render the inventory as an aligned text table (one row per route).

    A ported route's ``STATUS`` ends with its cut-over state when known:
    ``ported (orders_api.detail): canary 20% + shadow``.
    """
    header = ("PATH", "METHODS", "SIDE", "HANDLER", "STATUS")
    rows = [header] + [
        (
            r.path,
            ",".join(r.methods),
            r.side,
            r.handler,
            r.status
            + (f" by {r.shadowed_by}" if r.shadowed_by else "")
            + (f" ({', '.join(r.twins)})" if r.twins else "")
            + (f": {r.cutover}" if r.cutover else "")
            + (f"; {','.join(r.unreachable)} get 405" if r.unreachable else ""),
        )
        for r in routes
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
