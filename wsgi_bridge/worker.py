"""The worker-thread side of one request: the WSGI call itself (PEP 3333).

:func:`run_application` is the body of the one executor job a request gets.  In that
thread and that ``contextvars`` context it calls the application, iterates the result,
calls ``close()`` exactly once (after errors, early stops and disconnects too), and
hands every byte to the request's :class:`~wsgi_bridge.pump.ResponsePump`.  It never
raises: an application error becomes a 500, or a closed connection when the head
was already sent, and is logged once on the ``wsgi_bridge`` logger.

:class:`StartResponse` is the ``start_response`` callable given to the application;
it also keeps the worker's view of the response (head committed, body bytes sent).
"""

from __future__ import annotations

import logging
from typing import Any

from tornado import httputil

from .errors import ClientDisconnected, RequestBodyTooLarge, WSGIAppError
from .framing import ResponsePlan, plan_response, simple_response_headers
from .headers import parse_status, validate_headers
from .pump import SIMPLE_BODIES, ResponsePump
from .types import Environ, ExcInfo, HeaderList, WriteCallable, WSGIApp

log = logging.getLogger("wsgi_bridge")


def _completes_declared_length(headers: HeaderList, length: int) -> bool:
    """True if ``headers`` declare a ``Content-Length`` of at most ``length`` bytes."""
    for name, value in headers:
        if len(name) == 14 and name.lower() == "content-length":
            return value.isdigit() and int(value) <= length
    return False


class StartResponse:
    """``start_response(status, headers, exc_info=None)`` for one request (PEP 3333).

    Used by one worker thread only.  It validates the status (``"NNN reason"``) and
    headers (``list[tuple[str, str]]``), allows a second call only with ``exc_info``
    (replacing the response if nothing was sent, re-raising otherwise), and returns
    the legacy :meth:`write` callable.

    :param pump: where the response goes.
    :param request: the Tornado request (method and version decide the framing).
    :param request_id: sent back as ``X-Request-ID``.
    :raises WSGIAppError: from a call, for a bad status or header or a second call
        without ``exc_info``.
    """

    __slots__ = (
        "body_bytes",
        "code",
        "headers",
        "headers_sent",
        "plan",
        "pump",
        "reason",
        "request",
        "request_id",
    )

    def __init__(
        self, pump: ResponsePump, request: httputil.HTTPServerRequest, request_id: str
    ) -> None:
        self.pump = pump
        self.request = request
        self.request_id = request_id
        self.code: int | None = None
        self.reason = ""
        self.headers: HeaderList = []
        #: True once a head (the app's, or a 500) was committed to the pump.
        self.headers_sent = False
        #: The committed head of the app's response.
        self.plan: ResponsePlan | None = None
        #: Body bytes queued so far (to honour the app's ``Content-Length``).
        self.body_bytes = 0

    def __call__(
        self, status: str, headers: HeaderList, exc_info: ExcInfo | None = None
    ) -> WriteCallable:
        """Record the application's status and headers (PEP 3333 "The start_response()
        Callable"); nothing is sent until the first body byte or the end.

        :param status: ``"NNN reason"``, 200-599.
        :param headers: ``[(name, value), ...]`` of native latin-1 strings.
        :param exc_info: ``sys.exc_info()`` when called from an error handler.
        :returns: the legacy :meth:`write` callable.
        :raises WSGIAppError: bad status or header, or a second call without ``exc_info``.
        :raises BaseException: ``exc_info``'s exception, re-raised when the head was sent.
        """
        if exc_info is not None:
            try:
                if self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # break the frame <-> traceback cycle (PEP 3333)
        elif self.code is not None:
            raise WSGIAppError("start_response() called a second time without exc_info")
        code, reason = parse_status(status)
        validate_headers(headers)
        self.code, self.reason, self.headers = code, reason, headers
        return self.write

    def write(self, data: bytes) -> None:
        """The legacy ``write()`` callable: send ``data`` now (may block on backpressure).

        :raises TypeError: ``data`` is not bytes.
        :raises ClientDisconnected: the client went away.
        """
        if not isinstance(data, bytes):
            raise TypeError(f"write() expects bytes, not {type(data).__name__}")
        if data and not self.send(data) and self.pump.closed:
            raise ClientDisconnected("client disconnected")

    # ------------------------------------------------------------- the response
    def make_plan(self, known_length: int | None) -> ResponsePlan:
        """Plan the framing of the app's response (RFC 9112 §6).

        :param known_length: body length in bytes when the whole body is known.
        :raises WSGIAppError: the application never called ``start_response``, or its
            headers are not acceptable (see :func:`~wsgi_bridge.framing.plan_response`).
        """
        if self.code is None:
            raise WSGIAppError("the application did not call start_response()")
        return plan_response(
            self.request.method or "GET",
            self.request.version,
            self.code,
            self.reason,
            self.headers,
            known_length=known_length,
            extra_headers=[("X-Request-ID", self.request_id)],
        )

    def _commit(self, plan: ResponsePlan) -> bool:
        if not self.pump.commit(plan):
            return False
        self.headers_sent = True
        self.plan = plan
        return True

    def send(self, chunk: bytes) -> bool:
        """Queue one non-empty body chunk; blocks while over the high-water mark.

        :returns: False when iteration should stop: client gone, response taken over by
            the IOLoop (413), body not allowed (HEAD/204/304), ``Content-Length``
            reached, or the bridge already answered the app's error (:meth:`fail`).
        """
        if not self.headers_sent and not self._commit(self.make_plan(None)):
            return False
        plan = self.plan
        if plan is None:  # fail() sent the bridge's own 500: nothing of the app's follows
            return False
        if not plan.body_allowed:
            return False
        stop = False
        if plan.content_length is not None:
            remaining = plan.content_length - self.body_bytes
            if len(chunk) >= remaining:
                chunk = chunk[:remaining]
                stop = True
                if not chunk:
                    return False
        self.body_bytes += len(chunk)
        return self.pump.send(chunk) and not stop

    def finish(self) -> None:
        """The body is over: commit an empty response if needed, then ask for the finish."""
        if not self.headers_sent and not self._commit(self.make_plan(0)):
            return
        self.pump.request_finish()

    def send_whole(self, body: bytes) -> None:
        """The whole body is known: take the one-callback fast path if nothing was sent."""
        if self.headers_sent:
            # write() was used before returning a list: stream the rest.
            if body:
                self.send(body)
            self.finish()
            return
        plan = self.make_plan(len(body))
        if plan.content_length is not None and len(body) > plan.content_length:
            body = body[: plan.content_length]
        self.headers_sent = True
        self.pump.send_whole(plan, body)

    def fail(self, exc: BaseException) -> None:
        """Log ``exc`` once and answer 500, or close when the head was already sent."""
        request = self.request
        if isinstance(exc, (ClientDisconnected, RequestBodyTooLarge)) or self.pump.closed:
            log.info(
                "WSGI request %s %s stopped (id=%s): %r",
                request.method,
                request.uri,
                self.request_id,
                exc,
            )
        else:
            log.error(
                "error in WSGI application for %s %s (id=%s)",
                request.method,
                request.uri,
                self.request_id,
                exc_info=exc,
            )
        body = SIMPLE_BODIES[500]
        plan = plan_response(
            request.method or "GET",
            request.version,
            500,
            "Internal Server Error",
            simple_response_headers(body),
            extra_headers=[("X-Request-ID", self.request_id)],
        )
        if self.pump.fail(plan, body):
            self.headers_sent = True


def _stream(result: Any, sr: StartResponse) -> bytes | None:
    """Iterate ``result``, sending each chunk; return the body instead when the
    first chunk already completes the declared ``Content-Length``.

    That is how Flask/Werkzeug answer every non-streamed response (a generator over
    one encoded body, with ``Content-Length`` set), so it gets the fast path a list
    body gets: one IOLoop callback for headers, body and finish.
    """
    for chunk in result:
        if not isinstance(chunk, bytes):
            raise WSGIAppError(
                f"WSGI iterable yielded {type(chunk).__name__}, not bytes (PEP 3333)"
            )
        if not chunk:
            continue
        if not sr.headers_sent and _completes_declared_length(sr.headers, len(chunk)):
            return chunk
        if not sr.send(chunk):
            return None
    return None


def run_application(application: WSGIApp, environ: Environ, sr: StartResponse) -> None:
    """Run ``application`` for one request (the worker thread's whole job).

    Calls ``application(environ, sr)``, iterates its result, calls ``close()`` exactly
    once (also after errors and early stops), then hands the end of the response to
    the IOLoop.  A list or tuple body, or a body whose first chunk completes the
    declared ``Content-Length``, is sent whole (one IOLoop callback).

    :param application: the WSGI callable.
    :param environ: the PEP 3333 environ, ``wsgi.input`` set.
    :param sr: this request's :class:`StartResponse`.

    Never raises: errors become a 500 or a closed connection, logged once on the
    ``wsgi_bridge`` logger.
    """
    result: Any = None
    whole: bytes | None = None
    failed = False
    try:
        result = application(environ, sr)
        whole = b"".join(result) if isinstance(result, (list, tuple)) else _stream(result, sr)
    except BaseException as exc:
        failed = True
        sr.fail(exc)
    if result is not None:
        close = getattr(result, "close", None)
        if close is not None:
            try:
                close()
            except BaseException as exc:
                if failed:
                    log.exception("close() of the WSGI response iterable raised too")
                else:
                    failed = True
                    sr.fail(exc)
    try:
        if not failed:
            if whole is not None:
                sr.send_whole(whole)
            else:
                sr.finish()
    except BaseException as exc:
        sr.fail(exc)
    finally:
        sr.pump.worker_finished()
