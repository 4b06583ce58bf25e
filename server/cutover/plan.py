"""The cut-over plan: which ported routes step aside, which are canaries, which are shadowed.

Three settings (``config.Settings``), read at start and again on SIGHUP:

* ``FLASK_ROUTES=name,...``: these ported native routes step aside, and Flask
  serves their paths again (a roll-back with no deploy);
* ``CANARY_ROUTES=name:percent,...``: that share of clients gets the native
  handler, the rest Flask; sticky per client (:mod:`server.cutover.routing`);
* ``SHADOW_ROUTES=name[:percent],...``: ``GET``/``HEAD`` requests of these routes
  also run on the other side, in the background, and the two answers are compared
  (:mod:`server.cutover.shadow`); ``percent`` samples them (default 100).

A *name* is a native rule's name (``url(..., name="order_detail")``, what
``reverse_url`` takes). Only a **ported** route can be named: a native rule whose
path also matches a Flask route (``manage.py routes`` says ``ported``), because the
plan needs the Flask view to fall back to or compare with.

Parsing is strict: anything it cannot honour raises :class:`config.ConfigError`
with one line naming the setting and the value, so a bad value stops start-up
(and a bad SIGHUP reload keeps the routes as they were).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from config import ConfigError

Side = Literal["native", "flask"]
"""Which side serves a request: the native handler or the Flask view behind the bridge."""

SETTINGS = ("FLASK_ROUTES", "CANARY_ROUTES", "SHADOW_ROUTES")
"""The variables of the plan, as the environment names them."""


@dataclass(frozen=True)
class RoutePlan:
    """What the plan says about one ported route.

    :ivar name: the native rule's name.
    :ivar native_percent: the share of clients, 0 to 100, that the native handler
        serves: 100 (the default: ported), 0 (``FLASK_ROUTES``: switched back) or a
        ``CANARY_ROUTES`` percentage.
    :ivar shadow_percent: the share of safe requests, 0 to 100, also run on the other
        side and compared (``SHADOW_ROUTES``); 0 is no shadow.
    """

    name: str
    native_percent: float = 100.0
    shadow_percent: float = 0.0

    @property
    def state(self) -> str:
        """``native``, ``flask``, ``canary 20%``; with ``+ shadow`` (and its rate) when shadowed."""
        if self.native_percent >= 100:
            state = "native"
        elif self.native_percent <= 0:
            state = "flask"
        else:
            state = f"canary {_percent(self.native_percent)}"
        if self.shadow_percent > 0:
            rate = "" if self.shadow_percent >= 100 else f" {_percent(self.shadow_percent)}"
            state += f" + shadow{rate}"
        return state


NATIVE = RoutePlan("")
"""The plan of a route no setting names: native, no shadow."""


@dataclass(frozen=True)
class CutoverPlan:
    """The parsed settings: one :class:`RoutePlan` per route a setting names.

    :ivar routes: route name -> its plan; routes not in it are plain native.
    """

    routes: Mapping[str, RoutePlan]

    def route(self, name: str) -> RoutePlan:
        """The plan of route ``name`` (plain native when no setting names it)."""
        return self.routes.get(name, NATIVE)

    def describe(self) -> str:
        """One line for the log: ``order_detail: canary 20% + shadow; ...``.

        ``every ported route native`` when no setting names a route.
        """
        if not self.routes:
            return "every ported route native"
        return "; ".join(f"{name}: {plan.state}" for name, plan in sorted(self.routes.items()))

    @classmethod
    def parse(
        cls,
        flask_routes: str,
        canary_routes: str,
        shadow_routes: str,
        ported: Iterable[str],
        native_only: Iterable[str] = (),
    ) -> CutoverPlan:
        """Parse the three settings, checking every name against the route table.

        :param flask_routes: ``FLASK_ROUTES`` (``name,...``).
        :param canary_routes: ``CANARY_ROUTES`` (``name:percent,...``, 0 to 100).
        :param shadow_routes: ``SHADOW_ROUTES`` (``name[:percent],...``, over 0 to 100).
        :param ported: names of native rules with a Flask counterpart.
        :param native_only: names of the other native rules (for a clearer error).
        :raises config.ConfigError: one line naming the setting and the value: an
            unknown name, a route with no Flask counterpart, a percentage out of
            range, a name given twice, or a route both switched back and a canary.
        """
        ported = set(ported)
        native_only = set(native_only) - ported
        switched = _names("FLASK_ROUTES", flask_routes, ported, native_only, with_percent=False)
        canaries = _names("CANARY_ROUTES", canary_routes, ported, native_only, with_percent=True)
        shadows = _names("SHADOW_ROUTES", shadow_routes, ported, native_only, with_percent=None)
        for name in canaries:
            if name in switched:
                raise ConfigError(
                    f"CANARY_ROUTES: {name!r} is also in FLASK_ROUTES; a route is either "
                    "switched back to Flask or a canary: remove it from one of them"
                )
        routes: dict[str, RoutePlan] = {}
        for name in sorted({*switched, *canaries, *shadows}):
            native = 0.0 if name in switched else canaries.get(name, 100.0)
            routes[name] = RoutePlan(name, native, shadows.get(name, 0.0))
        return cls(routes)


_PERCENT = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,6})?")
"""A percentage as the settings take it: ``20``, ``0.5``, ``100``."""


def _percent(value: float) -> str:
    return f"{value:g}%"


def _names(
    variable: str,
    value: str,
    ported: set[str],
    native_only: set[str],
    *,
    with_percent: bool | None,
) -> dict[str, float]:
    """Parse ``name[:percent],...``: ``with_percent`` True requires it, False forbids it,
    None makes it optional (default 100, and 0 is refused: leave the route out)."""
    found: dict[str, float] = {}
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        name, colon, number = (part.strip() for part in item.partition(":"))
        if with_percent is False and colon:
            raise ConfigError(f"{variable}: {item!r} takes no percentage; write just {name!r}")
        if with_percent is True and not colon:
            raise ConfigError(
                f"{variable}: {item!r} needs a percentage of clients for the native "
                f"handler, e.g. {name}:10"
            )
        percent = 100.0
        if colon:
            # Plain decimal digits only: float() would also take 1e1, -0 or full-width digits.
            percent = float(number) if _PERCENT.fullmatch(number) else math.nan
            low_ok = percent >= 0 if with_percent else percent > 0
            if not (low_ok and percent <= 100):
                bounds = "from 0 to 100" if with_percent else "over 0, up to 100"
                raise ConfigError(f"{variable}: {item!r}: the percentage must be a number {bounds}")
        if name in found:
            raise ConfigError(f"{variable}: {name!r} is named twice")
        if name not in ported:
            raise ConfigError(f"{variable}: {_why_not(name, ported, native_only)}")
        found[name] = percent
    return found


def _why_not(name: str, ported: set[str], native_only: set[str]) -> str:
    choices = ", ".join(sorted(ported)) or "none"
    if name in native_only:
        return (
            f"{name!r} has no Flask counterpart to fall back to or compare with "
            f"(ported routes: {choices})"
        )
    return f"no native route is named {name!r} (ported routes: {choices})"
