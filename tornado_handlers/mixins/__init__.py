"""Small mixins, one job each, that :class:`~tornado_handlers.base.BaseHandler` combines.

* :class:`.ExecutorMixin` -- blocking work on the shared pool (``run_in_executor``,
  ``run_in_session``);
* :class:`.JSONMixin` -- JSON in and out, byte for byte as Flask (``json_body``,
  ``write_json``);
* :class:`.JSONErrorsMixin` -- errors answered as Flask answers them (``write_error``);
* :class:`.FlaskSessionMixin` -- Flask's session, login and URLs (``session``,
  ``current_user``, ``load_user``, ``flask_url``);
* :class:`.MethodParityMixin` -- ``HEAD``, ``OPTIONS``, ``Allow`` and no ``ETag``, as Flask;
* :class:`.InFlightMixin` -- counts native requests in flight for the graceful shutdown;
* :class:`.CSRFMixin` -- Flask-WTF's CSRF token on unsafe requests with the session cookie.

Each is a :class:`tornado.web.RequestHandler` subclass (so it type-checks on its
own) and reads only ``self.executor`` and ``self.flask_app``, which
``BaseHandler.initialize`` sets from the route table.
"""

from tornado_handlers.mixins.csrf import CSRFMixin
from tornado_handlers.mixins.errors import JSONErrorsMixin
from tornado_handlers.mixins.executor import ExecutorMixin
from tornado_handlers.mixins.in_flight import InFlightMixin
from tornado_handlers.mixins.json_io import JSONMixin
from tornado_handlers.mixins.methods import MethodParityMixin
from tornado_handlers.mixins.session import FlaskSessionMixin

__all__ = [
    "CSRFMixin",
    "ExecutorMixin",
    "FlaskSessionMixin",
    "InFlightMixin",
    "JSONErrorsMixin",
    "JSONMixin",
    "MethodParityMixin",
]
