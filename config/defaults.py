"""The service's names and defaults, as the project generator fills them in.

A project made with ``copier copy`` gets this module from
``config/defaults.py.jinja`` with its own answers (docs/template.md); the
skeleton keeps its own values here. They are defaults: the environment and
``.env`` still win (:mod:`config.settings`).
"""

from __future__ import annotations

PROJECT_NAME = "Hybrid service"
"""The service's name as people read it: the pages' header and title."""

SERVICE_NAME = "tornado_flask_hybrid"
"""The service's identifier (a lowercase Python identifier). It names the
session cookie, ``<SERVICE_NAME>_session``: browsers send a host's cookies to
every port of it, so two services on one host would otherwise log each other
out."""

DEFAULT_PORT = 8000
"""``PORT`` when it is not set."""

DEFAULT_DATABASE_URL: str | None = None
"""``DATABASE_URL`` when it is not set; ``None`` means a SQLite file under
``instance/``, one per ``APP_ENV``."""
