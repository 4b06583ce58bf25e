"""Tests of ``wsgi_bridge``: pure pieces without sockets, the rest over real sockets.

A package so its helper module imports as ``tests.bridge.apps``, like the rest of
the suite's ``tests.conftest`` imports; the server harness itself ships in the
package as :mod:`wsgi_bridge.testing`.
"""
