"""The native side: async ``tornado.web.RequestHandler`` routes, matched before Flask.

* :mod:`.base` -- :class:`~tornado_handlers.base.BaseHandler`, the base of every
  native JSON handler (combines the small mixins of :mod:`.mixins`);
* :mod:`.health` -- ``/healthz``; :mod:`.account` -- ``/api/me``, ``/api/preferences``;
* :mod:`.flask_session` and :mod:`.flask_urls` -- Flask's session cookie and URL
  map, read natively (pure);
* :mod:`.in_flight` -- native requests in flight, for the graceful shutdown;
* a subpackage per feature with native routes (its handlers and its feature
  object; ``server/features.py`` lists them).

The route table itself is ``server/routes.py``.
"""
