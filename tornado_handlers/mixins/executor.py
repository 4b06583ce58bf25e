"""Blocking work of native handlers, on the shared executor.

.. warning::
   The IOLoop thread must never block. Anything that waits on a disk, a
   socket or a lock -- every database call included -- goes through
   :meth:`ExecutorMixin.run_in_executor` or :meth:`ExecutorMixin.run_in_session`,
   which run it on the shared executor and ``await`` the result. A blocking
   call made directly in a handler stalls every request and WebSocket of the
   process for as long as it takes.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import Executor
from typing import ParamSpec, TypeVar

import tornado.ioloop
import tornado.web
from flask import Flask
from sqlalchemy.orm import Session

from app.database import call_in_session

P = ParamSpec("P")
T = TypeVar("T")


class ExecutorMixin(tornado.web.RequestHandler):
    """``await self.run_in_executor(fn, ...)`` and ``await self.run_in_session(fn)``.

    :ivar executor: the shared :class:`~concurrent.futures.ThreadPoolExecutor`.
    :ivar flask_app: the Flask app whose database ``run_in_session`` uses.
    """

    executor: Executor
    flask_app: Flask

    async def run_in_executor(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run the blocking ``fn(*args, **kwargs)`` on the shared executor and await it.

        ``fn`` runs in a copy of the caller's ``contextvars`` context (as
        ``asyncio.to_thread`` does; ``run_in_executor`` alone would not), so its log
        lines carry this request's ``request_id``.

        :returns: what ``fn`` returned.
        :raises Exception: whatever ``fn`` raised.
        """
        loop = tornado.ioloop.IOLoop.current()
        context = contextvars.copy_context()
        call = functools.partial(context.run, fn, *args, **kwargs)
        return await loop.run_in_executor(self.executor, call)

    async def run_in_session(self, fn: Callable[[Session], T]) -> T:
        """Run ``fn(session)`` as one unit of work on the shared executor.

        The session is scoped to this call: committed if ``fn`` returns,
        rolled back if it raises, always closed; an app context of the Flask
        app is pushed around it inside the worker thread (Flask-SQLAlchemy 3
        needs one) and popped afterwards. See :func:`app.database.call_in_session`.

        :param fn: takes a :class:`~sqlalchemy.orm.Session`; return plain data.
        :raises Exception: whatever ``fn`` or the commit raised.
        """
        return await self.run_in_executor(call_in_session, self.flask_app, fn)
