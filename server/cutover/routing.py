"""Per-request routing of ported routes: native, switched back to Flask, or a sticky canary.

:class:`Cutover` holds the live :class:`~server.cutover.plan.CutoverPlan` of one
server process and puts a :class:`CutoverMatcher` on each **ported** native rule
(a native rule whose path a Flask route also has). Tornado asks a rule's matcher
whether the rule serves a request (``tornado.routing.RuleRouter.find_handler``);
the matcher answers as the plain path matcher would, unless the plan says Flask
should serve this request: then it answers "no", Tornado goes on down the table,
and the last rule hands the request to Flask. Nothing is rebuilt to switch a
route: :meth:`Cutover.apply` swaps the plan (one attribute, IOLoop thread) and
the next request follows it; connections and requests in flight are untouched.

**Sticky canary.** A client's side is a pure function of the route and the
client's identity: ``blake2b(route + identity)`` mapped to ``[0, 100)`` and
compared with the route's native percentage. The identity is the logged-in user
of the Flask session cookie (``user:<id>``, so a user keeps one side across
devices), else the ``<service>_canary`` cookie, which the response sets when the
client had none (:func:`wsgi_bridge.http1.observe_response` adds the header to
whichever side's response). Raising the percentage only adds clients to the
native side: one already there stays. The same identity gives the same side in
every process and after a restart.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from flask import Flask
from tornado import httputil
from tornado.routing import PathMatches, Rule

from config import Settings
from config.defaults import SERVICE_NAME
from config.settings import CutoverSettings
from server.cutover.metrics import CutoverMetrics
from server.cutover.plan import CutoverPlan, RoutePlan, Side
from server.inventory import build_inventory
from tornado_handlers.flask_session import cookie_name, load_session, session_user
from wsgi_bridge.http1 import observe_response

CANARY_COOKIE = f"{SERVICE_NAME}_canary"
"""The cookie that keeps an anonymous client on one side of every canary."""

CANARY_COOKIE_MAX_AGE = 365 * 24 * 3600
"""Seconds the canary cookie lives (a year: it only carries a random id)."""

SAFE_METHODS = frozenset({"GET", "HEAD"})
"""The methods a shadow may repeat: safe (RFC 9110 section 9.2.1), so running them
twice changes nothing; every other method is never shadowed, whatever the plan says."""

_TOKEN = re.compile(r"[A-Za-z0-9_-]{8,64}")
"""What a canary cookie value must look like to be used (else a new one is set)."""

_DECISIONS = "_hybrid_cutover"
"""Attribute of the ``HTTPServerRequest``: route name -> the side decided for it."""


@dataclass(frozen=True)
class NativeTarget:
    """The native handler a ported route's request would run, for a shadow run.

    :ivar handler_class: the rule's ``RequestHandler`` subclass.
    :ivar kwargs: the rule's ``initialize()`` keyword arguments.
    :ivar path_args: the positional groups the path matched (bytes, unquoted later
        by Tornado as for any request).
    :ivar path_kwargs: the named groups.
    """

    handler_class: type
    kwargs: Mapping[str, Any]
    path_args: Sequence[bytes]
    path_kwargs: Mapping[str, bytes]


class Shadow(Protocol):
    """What runs the other side of a shadowed request (:mod:`server.cutover.shadow`)."""

    def begin(
        self,
        request: httputil.HTTPServerRequest,
        plan: RoutePlan,
        primary: Side,
        native: NativeTarget,
    ) -> None:
        """Called on the IOLoop when a safe request of a shadowed route is routed,
        before the primary side starts; decides whether to sample it, and if so
        watches the primary's response and runs the other side once it ended."""
        ...


def bucket(route: str, identity: str) -> float:
    """Where ``identity`` falls for ``route``, uniformly in ``[0, 100)``: native when under
    the route's native percentage. Stable across processes and restarts (no ``hash()``)."""
    digest = hashlib.blake2b(f"{route}\0{identity}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") * 100 / 2**64


class _SetCookie:
    """A response observer adding the canary cookie to whichever side's response."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def on_headers(
        self, start_line: httputil.ResponseStartLine, headers: httputil.HTTPHeaders
    ) -> None:
        headers.add("Set-Cookie", self.value)

    def on_data(self, chunk: bytes) -> None:
        pass

    def on_finish(self) -> None:
        pass


class Cutover:
    """The cut-over state of one server process: the plan, the matchers, the counts.

    :param flask_app: the Flask app (its session cookie gives the canary identity,
        its ``SESSION_COOKIE_SECURE`` the canary cookie's ``Secure``).
    :param plan: the plan to start with.
    :param ported: names of the ported native rules (the only ones a plan may name).
    :param native_only: names of the other native rules (for clearer errors).
    :param metrics: the counters (``cutover_*`` and ``shadow_*`` on ``/metrics``).
    :param shadow: what runs shadows; ``None`` never shadows.
    """

    def __init__(
        self,
        flask_app: Flask,
        plan: CutoverPlan,
        ported: Sequence[str],
        native_only: Sequence[str],
        metrics: CutoverMetrics,
        shadow: Shadow | None = None,
    ) -> None:
        self.flask_app = flask_app
        self.ported = tuple(ported)
        self.native_only = tuple(native_only)
        self.metrics = metrics
        self.shadow = shadow
        self.plan = plan
        self._session_cookie = cookie_name(flask_app)
        self._secure = bool(flask_app.config.get("SESSION_COOKIE_SECURE"))
        metrics.show(plan, self.ported)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        rules: Sequence[Rule],
        flask_app: Flask,
        metrics: CutoverMetrics,
        shadow: Shadow | None = None,
    ) -> Cutover:
        """Parse the plan against the route table and put matchers on the ported rules.

        :param settings: ``FLASK_ROUTES``, ``CANARY_ROUTES``, ``SHADOW_ROUTES``, ``FLASK_MOUNT``.
        :param rules: the route table (``server.routes.make_routes``); the ported
            rules' matchers are replaced in place.
        :param flask_app: the Flask app behind the fallback.
        :param metrics: where to count.
        :param shadow: what runs shadows.
        :raises config.ConfigError: the plan names what it cannot honour (one line).
        """
        inventory = build_inventory(list(rules), flask_app, settings.flask_mount)
        ported = [r.name for r in inventory if r.status == "ported" and r.name]
        native_only = [r.name for r in inventory if r.status == "native-only" and r.name]
        plan = CutoverPlan.parse(
            settings.flask_routes,
            settings.canary_routes,
            settings.shadow_routes,
            ported,
            native_only,
        )
        cutover = cls(flask_app, plan, ported, native_only, metrics, shadow)
        for rule in rules:
            if rule.name in ported and isinstance(rule.matcher, PathMatches):
                rule.matcher = CutoverMatcher(rule, cutover)
        return cutover

    def parse(self, settings: CutoverSettings) -> CutoverPlan:
        """Parse ``settings``' three variables against this process's route table.

        :param settings: the whole :class:`config.Settings` or just its
            :class:`~config.settings.CutoverSettings` (what a reload reads).

        :raises config.ConfigError: as :meth:`CutoverPlan.parse`.
        """
        return CutoverPlan.parse(
            settings.flask_routes,
            settings.canary_routes,
            settings.shadow_routes,
            self.ported,
            self.native_only,
        )

    def apply(self, plan: CutoverPlan) -> None:
        """Follow ``plan`` from the next request on (IOLoop thread)."""
        self.plan = plan
        self.metrics.show(plan, self.ported)

    def side_for(self, request: httputil.HTTPServerRequest, plan: RoutePlan) -> Side:
        """Which side serves ``request`` on a route planned as ``plan`` (sticky for a canary)."""
        percent = plan.native_percent
        if percent >= 100:
            return "native"
        if percent <= 0:
            return "flask"
        return "native" if bucket(plan.name, self.identity(request)) < percent else "flask"

    def identity(self, request: httputil.HTTPServerRequest) -> str:
        """The client's canary identity: its session user, else its canary cookie.

        A client with neither gets a new random id, and the response sets it as
        the canary cookie (:data:`CANARY_COOKIE`), so its next requests land on
        the same side.
        """
        cookies = request.cookies  # parsed once per request, kept on it
        session_value = cookies.get(self._session_cookie)
        if session_value is not None:
            user = session_user(load_session(self.flask_app, session_value.value))
            if user is not None:
                return f"user:{user.id}"
        canary = cookies.get(CANARY_COOKIE)
        if canary is not None and _TOKEN.fullmatch(canary.value):
            return f"cookie:{canary.value}"
        token = secrets.token_urlsafe(12)
        secure = "; Secure" if self._secure or request.protocol == "https" else ""
        header = (
            f"{CANARY_COOKIE}={token}; Path=/; Max-Age={CANARY_COOKIE_MAX_AGE}; "
            f"HttpOnly; SameSite=Lax{secure}"
        )
        observe_response(request, _SetCookie(header))
        cookies[CANARY_COOKIE] = token  # type: ignore[assignment]  # BaseCookie makes a Morsel
        return f"cookie:{token}"


class CutoverMatcher(PathMatches):
    """A ported rule's path matcher that steps aside when the plan says Flask serves.

    Decides once per request and rule (the answer is kept on the request, so a
    second look, e.g. by the metrics, sees the same), counts the decision, and
    for a safe request of a shadowed route hands it to the :class:`Shadow`.

    :param rule: the ported rule (its regular expression, name, target and kwargs).
    :param cutover: the process's :class:`Cutover`.
    """

    def __init__(self, rule: Rule, cutover: Cutover) -> None:
        assert isinstance(rule.matcher, PathMatches) and rule.name is not None
        super().__init__(rule.matcher.regex)
        self.name = rule.name
        self.rule = rule
        self.cutover = cutover
        self._count: Callable[[str, Side], None] = cutover.metrics.routed

    def match(self, request: httputil.HTTPServerRequest) -> dict[str, Any] | None:
        """The path's groups when the native handler serves ``request``; ``None`` for Flask."""
        path_match = super().match(request)
        if path_match is None:
            return None
        decisions: dict[str, Side] | None = request.__dict__.get(_DECISIONS)
        if decisions is None:
            decisions = request.__dict__[_DECISIONS] = {}
        elif self.name in decisions:
            return path_match if decisions[self.name] == "native" else None
        cutover = self.cutover
        plan = cutover.plan.route(self.name)
        side = cutover.side_for(request, plan)
        decisions[self.name] = side
        self._count(self.name, side)
        if plan.shadow_percent > 0 and request.method in SAFE_METHODS and cutover.shadow:
            target = NativeTarget(
                self.rule.target,
                self.rule.target_kwargs,
                path_match.get("path_args", ()),
                path_match.get("path_kwargs", {}),
            )
            cutover.shadow.begin(request, plan, side, target)
        return path_match if side == "native" else None
