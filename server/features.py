"""The features this service runs: the one list the skeleton reads them from.

Add a feature by importing its ``Feature`` object and listing it; remove one by
deleting its folders and its lines here (the example's are marked). See
docs/features.md.
"""

from __future__ import annotations

from app.feature import Feature
from tornado_handlers.tasks import feature as tasks  # the example (delete to remove it)

FEATURES: tuple[Feature, ...] = (
    # In order: Flask registrations, native rules and start-up hooks follow it.
    tasks,  # the example (delete to remove it)
)
"""Features in use."""
