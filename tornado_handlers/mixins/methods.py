"""HTTP methods answered as Flask answers them for every rule: HEAD, OPTIONS, 405 + Allow."""

from __future__ import annotations

import inspect

import tornado.web

from app.errors import allow_header


class MethodParityMixin(tornado.web.RequestHandler):
    """``HEAD`` runs ``get`` without the body (RFC 9110 section 9.3.2), ``OPTIONS``
    answers 200 with ``Allow`` (section 9.3.7), no automatic ``ETag``.

    A 405 carries ``Allow`` (section 15.5.6) through :meth:`implemented_methods`.
    """

    @classmethod
    def implemented_methods(cls) -> list[str]:
        """Return the HTTP methods this handler answers, sorted (the ``Allow`` header).

        A method counts when the subclass defines it (Tornado's own
        ``RequestHandler`` methods answer 405); ``HEAD`` counts when ``GET``
        does, and ``OPTIONS`` always.
        """
        base = tornado.web.RequestHandler
        methods = {"OPTIONS"}
        for method in cls.SUPPORTED_METHODS:
            name = method.lower()
            if method in ("HEAD", "OPTIONS"):
                continue
            if getattr(cls, name, None) is not getattr(base, name, None):
                methods.add(method)
        if "GET" in methods or cls.head is not MethodParityMixin.head:
            methods.add("HEAD")
        return sorted(methods)

    async def head(self, *args: str, **kwargs: str) -> None:
        """``HEAD``: ``get`` without the body (RFC 9110 section 9.3.2); 405 without ``get``.

        The status and headers -- ``Content-Length`` of the body ``GET`` would
        send included -- are ``GET``'s; Tornado's ``flush`` sends no body
        for ``HEAD``. A subclass may still define its own ``head``.

        :raises tornado.web.HTTPError: 405 if the handler has no ``get``.
        """
        if type(self).get is tornado.web.RequestHandler.get:
            raise tornado.web.HTTPError(405)
        result = self.get(*args, **kwargs)
        if inspect.isawaitable(result):
            await result

    def options(self, *args: str, **kwargs: str) -> None:
        """``OPTIONS``: 200, ``Allow`` and no body, as Flask answers (RFC 9110 section 9.3.7).

        ``Content-Type`` is Flask's for its empty answer, so both sides send
        the same headers.
        """
        self.set_header("Allow", allow_header(self.implemented_methods()))
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish()

    def compute_etag(self) -> str | None:
        """No automatic ``ETag``: Flask sends none for these responses.

        A native route must not start answering ``If-None-Match`` with 304
        where its Flask twin answers 200 (parity).
        """
        return None
