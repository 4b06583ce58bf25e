"""Cut-over in production: switch a ported route back to Flask, canary it, shadow it.

* :mod:`server.cutover.plan`: ``FLASK_ROUTES``, ``CANARY_ROUTES``, ``SHADOW_ROUTES``
  parsed and checked against the route table;
* :mod:`server.cutover.routing`: the matchers that route each request of a ported
  route to one side (sticky for a canary), and :class:`Cutover`, the live state;
* :mod:`server.cutover.shadow`: the other side run in the background and compared
  with the primary response (:mod:`server.cutover.compare`, the rules of
  ``tests/support/parity.py``);
* :mod:`server.cutover.metrics`: what ``/metrics`` and ``manage.py routes --stats`` show.

:func:`reload_plan` is what SIGHUP runs (``server/serve.py``); a server process forked
later than its supervisor started follows :func:`current_plan` (``server/processes.py``).
See docs/migration.md, "Cut-over in production".
"""

from __future__ import annotations

import asyncio
import logging

from config import ConfigError, load_settings
from server.cutover.plan import CutoverPlan, RoutePlan, Side
from server.cutover.routing import Cutover

__all__ = ["Cutover", "CutoverPlan", "RoutePlan", "Side", "current_plan", "reload_plan"]

log = logging.getLogger("hybrid.cutover")


def current_plan(cutover: Cutover) -> CutoverPlan:
    """Read the settings now (environment and ``.env``) and parse their cut-over plan.

    Any thread: it reads a file and only looks at ``cutover``'s route names.

    :param cutover: the process's :class:`Cutover` (its route table checks the names).
    :returns: the plan the settings give today (not applied: :meth:`Cutover.apply`).
    :raises config.ConfigError: a setting is invalid (one line naming it and its value).
    """
    return cutover.parse(load_settings())


async def reload_plan(cutover: Cutover) -> bool:
    """Read the settings again (environment and ``.env``) and follow their plan (SIGHUP).

    Only ``FLASK_ROUTES``, ``CANARY_ROUTES`` and ``SHADOW_ROUTES`` take effect; other
    settings need a restart. Connections and requests in flight are untouched.

    :param cutover: the process's :class:`Cutover` (call on its IOLoop).
    :returns: ``True`` when the new plan is in force; ``False`` when the settings
        are invalid, which is logged as one error line and leaves the routes as they were.
    """
    try:
        plan = await asyncio.to_thread(current_plan, cutover)
    except ConfigError as error:
        log.error("SIGHUP: routes not reloaded, keeping the current ones: %s", error)
        return False
    cutover.apply(plan)
    log.info("SIGHUP: routes reloaded: %s", plan.describe())
    return True
