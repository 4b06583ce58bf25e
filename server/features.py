"""The features this service runs: the one list the skeleton reads them from.

To remove the example, delete its folders and the two lines marked below
(docs/features.md).
"""

from __future__ import annotations

from app.feature import Feature
from tornado_handlers.tasks import feature as tasks  # the example (delete to remove it)

FEATURES: tuple[Feature, ...] = (
    tasks,  # the example (delete to remove it)
)
"""Features in use, in order: Flask registrations, native rules and start-up follow it."""
