"""Helpers shared by the test modules (tests import these, never each other or a conftest).

* :mod:`.waiting` -- :func:`~tests.support.waiting.wait_for`, the one polling loop;
* :mod:`.server` -- :class:`~tests.support.server.LiveServer` (what the
  ``live_server`` fixture returns) and WebSocket helpers;
* :mod:`.cli` -- ``manage.py`` as a user runs it: one-shot commands and a served process;
* :mod:`.parity` -- comparing a ported native route with its Flask view.

Helpers of a feature's tests live with them (``tests/<feature>/support.py``).
"""
