"""Counting native requests in flight, so the graceful shutdown can wait for them."""

from __future__ import annotations

import tornado.web

from tornado_handlers.in_flight import InFlight


class InFlightMixin(tornado.web.RequestHandler):
    """Enter ``Application.settings["in_flight"]`` in ``prepare``; leave it once, when done.

    Leaves on ``on_finish`` or when the connection closes first, whichever
    comes first. Without an ``in_flight`` setting (a handler mounted elsewhere)
    it counts nothing.
    """

    _in_flight: InFlight | None = None

    def prepare(self) -> None:
        """Count this request in (Tornado calls it before the method)."""
        in_flight: InFlight | None = self.application.settings.get("in_flight")
        if in_flight is not None:
            in_flight.enter()
            self._in_flight = in_flight

    def on_finish(self) -> None:
        """Count this request out: the response is complete."""
        self._leave()

    def on_connection_close(self) -> None:
        """Count this request out: the client went away first."""
        self._leave()
        super().on_connection_close()

    def _leave(self) -> None:
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            in_flight.leave()
