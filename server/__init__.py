"""The composition root: the one package that knows every other one.

* :mod:`server.build` -- settings -> executor -> Flask app -> bridge -> Tornado
  ``Application`` (:func:`~server.build.build_hybrid`);
* :mod:`server.routes` -- the whole route table, native rules first, the fallback last;
* :mod:`server.features` -- the features in use (the one list to edit);
* :mod:`server.serve` -- the process: start-up checks, listen, signals, drain;
* :mod:`server.checks` -- start-up checks (database reachable and migrated);
* :mod:`server.inventory` -- what ``manage.py routes`` prints.

Imports point down: ``server`` -> ``app``, ``tornado_handlers``, ``wsgi_bridge``,
``config``; nothing imports ``server`` but ``manage.py`` (and tests).
"""

from server.build import Hybrid, build_hybrid
from server.serve import StartupError, serve

__all__ = ["Hybrid", "StartupError", "build_hybrid", "serve"]
