"""Cut-over in production: switch a ported route back to Flask, canary it, shadow it.

* :mod:`server.cutover.plan`: ``FLASK_ROUTES``, ``CANARY_ROUTES``, ``SHADOW_ROUTES``
  parsed and checked against the route table;
* :mod:`server.cutover.routing`: the matchers that route each request of a ported
  route to one side (sticky for a canary), and :class:`Cutover`, the live state;
* :mod:`server.cutover.shadow`: the other side run in the background and compared
  with the primary response (:mod:`server.cutover.compare`, the rules of
  ``tests/support/parity.py``);
* :mod:`server.cutover.metrics`: what ``/metrics`` and ``manage.py routes --stats`` show.

:func:`reload_plan` is what SIGHUP runs in a server process (``server/serve.py``);
:func:`reload_settings` what it runs in the supervisor of ``serve --processes N``
(``server/processes.py``), which forks any replacement with the last settings a reload
validated. Both read only the three cut-over variables (:class:`config.CutoverSettings`),
and :func:`warn_if_frozen` says when the process environment pins one of them.
See docs/migration.md, "Cut-over in production".
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping

from config import ConfigError, Settings, load_feature_settings
from config.settings import CutoverSettings
from server.cutover.plan import CutoverPlan, RoutePlan, Side
from server.cutover.routing import Cutover

__all__ = [
    "CUTOVER_VARIABLES",
    "Cutover",
    "CutoverPlan",
    "RoutePlan",
    "Side",
    "current_plan",
    "frozen_variables",
    "read_cutover_settings",
    "reload_plan",
    "reload_settings",
    "warn_if_frozen",
]

log = logging.getLogger("hybrid.cutover")

CUTOVER_VARIABLES = tuple(name.upper() for name in CutoverSettings.model_fields)
"""``FLASK_ROUTES``, ``CANARY_ROUTES``, ``SHADOW_ROUTES``: the settings SIGHUP reloads."""


def read_cutover_settings() -> CutoverSettings:
    """Read the three cut-over variables now (environment, then ``.env``), and nothing else.

    A bad value in another setting (``THREADS=abc``) does not stop a roll-back.

    :raises config.ConfigError: one line per invalid variable (as :func:`config.load_settings`).
    """
    return load_feature_settings(CutoverSettings)


def current_plan(cutover: Cutover) -> CutoverPlan:
    """Read the cut-over settings now (environment and ``.env``) and parse their plan.

    Any thread: it reads a file and only looks at ``cutover``'s route names. Only
    ``FLASK_ROUTES``, ``CANARY_ROUTES`` and ``SHADOW_ROUTES`` are read
    (:class:`config.CutoverSettings`).

    :param cutover: the process's :class:`Cutover` (its route table checks the names).
    :returns: the plan the settings give today (not applied: :meth:`Cutover.apply`).
    :raises config.ConfigError: a cut-over setting is invalid (one line naming it and
        its value).
    """
    return cutover.parse(read_cutover_settings())


def frozen_variables(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The cut-over variables set in the process environment, upper case, in
    :data:`CUTOVER_VARIABLES` order.

    Matched case-insensitively, as pydantic-settings reads them (``flask_routes``
    counts). A variable there wins over ``.env`` and cannot change until a restart.

    :param environ: the environment to look at; default this process's.
    """
    present = {name.upper() for name in environ}
    return [name for name in CUTOVER_VARIABLES if name in present]


def warn_if_frozen(when: str) -> None:
    """Log one WARNING naming the cut-over variables set in the process environment, if any.

    :param when: what the line starts with, e.g. ``"SIGHUP"`` or ``"start"``.
    """
    names = frozen_variables()
    if names:
        verb, pronoun = ("is", "it") if len(names) == 1 else ("are", "them")
        log.warning(
            "%s: %s %s set in the process environment, so SIGHUP cannot change %s: keep %s in .env",
            when,
            ", ".join(names),
            verb,
            pronoun,
            pronoun,
        )


async def reload_plan(cutover: Cutover, *, warn: bool = True) -> bool:
    """Read the cut-over settings again (environment and ``.env``) and follow their plan
    (SIGHUP).

    Only ``FLASK_ROUTES``, ``CANARY_ROUTES`` and ``SHADOW_ROUTES`` are read and take
    effect; other settings need a restart, and a bad value in one of them does not
    stop the reload. Connections and requests in flight are untouched.

    :param cutover: the process's :class:`Cutover` (call on its IOLoop).
    :param warn: log :func:`warn_if_frozen`'s warning; ``False`` in a child of
        ``serve --processes N``, whose supervisor logs it once for all.
    :returns: ``True`` when the new plan is in force; ``False`` when the settings
        are invalid, which is logged as one error line and leaves the routes as they were.
    """
    if warn:
        warn_if_frozen("SIGHUP")
    try:
        plan = await asyncio.to_thread(current_plan, cutover)
    except ConfigError as error:
        log.error("SIGHUP: routes not reloaded, keeping the current ones: %s", error)
        return False
    cutover.apply(plan)
    log.info("SIGHUP: routes reloaded: %s", plan.describe())
    return True


def reload_settings(settings: Settings, cutover: Cutover) -> Settings:
    """The supervisor's SIGHUP: validate the cut-over settings now, for the processes it
    forks from now on.

    :param settings: the settings the supervisor forks its processes with now.
    :param cutover: the supervisor's :class:`Cutover` (its route table checks the names;
        not applied: the supervisor serves nothing).
    :returns: ``settings`` with the three values read now when they are valid; else
        ``settings`` unchanged, after one error line: every process, a replacement
        included, keeps following the last plan the start or a reload validated.
    """
    warn_if_frozen("SIGHUP")
    try:
        values = read_cutover_settings()
        cutover.parse(values)
    except ConfigError as error:
        log.error(
            "SIGHUP: cut-over settings not reloaded, new processes keep the current ones: %s",
            error,
        )
        return settings
    return settings.model_copy(update=values.model_dump())
