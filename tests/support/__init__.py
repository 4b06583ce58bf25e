"""Helpers shared by the test modules (tests import these, never each other or a conftest).

* :mod:`.server` -- :class:`~tests.support.server.LiveServer` (what the
  ``live_server`` fixture returns), WebSocket helpers and raw socket exchanges;
* :mod:`.routes` -- test-only routes: native rules added to a built hybrid, Flask
  views added by a factory, a WebSocket that says who is logged in, the route inventory;
* :mod:`.login` -- registering and logging in as a browser does, over real sockets;
* :mod:`.cli` -- ``manage.py`` as a user runs it: one-shot commands and a served process;
* :mod:`.project` -- a copy of the checkout in its own virtualenv, as a new user has it;
* :mod:`.parity` -- comparing a ported native route with its Flask view;
* :mod:`.browser` -- Chromium for Playwright, and the mark that skips without it;
* :mod:`.redis` -- a private ``redis-server`` per test (the ``redis_server`` fixture).

The one polling loop is :func:`wsgi_bridge.testing.wait_for` (shipped with the
bridge's harness, as ``flask.testing`` ships Flask's).

The skeleton's tests use only the skeleton's routes and these test-only ones, so
they pass whatever features are in use. Helpers of a feature's tests live with
them (``tests/<feature>/support.py``).
"""
