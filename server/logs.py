"""Structured logs: every logger of the process through structlog, JSON or text.

:func:`configure_logging` routes the standard library's loggers (``tornado.*``,
``hybrid.*``, ``wsgi_bridge``, ``werkzeug``, ``sqlalchemy``, the features') and
structlog's own through one ``structlog.stdlib.ProcessorFormatter``, so every line
has the same keys:

* ``timestamp`` (ISO 8601, UTC), ``level``, ``logger``, ``event`` (the message);
* ``request_id`` on every line written while serving a request, on either side:
  native handlers bind it with ``structlog.contextvars`` (``BaseHandler.prepare``),
  the Flask app in ``before_request`` (:func:`app.observability.init_app`), and the
  bridge's worker thread sets ``wsgi_bridge.request_id.current_request_id`` for its
  own lines;
* the access line (``event="request"``, logger ``tornado.access``): ``request_id``,
  ``method``, ``path``, ``status``, ``bytes``, ``duration_ms``, ``side``, ``client``,
  ``user_agent``, ``aborted`` (see :data:`wsgi_bridge.access_log.ACCESS_FIELDS`).

``LOG_FORMAT=json`` writes one JSON object per line (the default with
``APP_ENV=production``); ``text`` writes structlog's ``ConsoleRenderer`` lines, in
colour only on a terminal.  See docs/observability.md.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from config.settings import LogFormat
from wsgi_bridge.access_log import access_log
from wsgi_bridge.request_id import current_request_id

__all__ = ["LogFormat", "configure_logging"]


def _add_bridge_request_id(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Tag lines the bridge's worker threads write (outside Flask's hooks) with the id."""
    if "request_id" not in event_dict:
        request_id = current_request_id.get()
        if request_id is not None:
            event_dict["request_id"] = request_id
    return event_dict


def _access_event(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """The access line's event is ``"request"``; its summary text is in the fields."""
    record = event_dict.get("_record")
    if record is not None and record.name == access_log.name and "status" in event_dict:
        event_dict["event"] = "request"
    return event_dict


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        _add_bridge_request_id,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        _access_event,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
    ]


def _renderer(log_format: LogFormat, stream: TextIO) -> Processor:
    if log_format == "json":
        return structlog.processors.JSONRenderer()
    return structlog.dev.ConsoleRenderer(colors=stream.isatty())


def configure_logging(
    level: str, log_format: LogFormat = "text", stream: TextIO | None = None
) -> None:
    """Send every logger to ``stream`` (default stderr) through structlog, at ``level``.

    Replaces the root logger's handlers (so calling it again, e.g. in tests,
    switches the format) and configures ``structlog.get_logger()`` to end in the
    same handler.

    :param level: the root level name (``"DEBUG"``, ``"INFO"`` ...).
    :param log_format: ``"json"`` or ``"text"`` (see the module docstring).
    :param stream: where lines go; default ``sys.stderr``.
    :raises ValueError: an unknown ``log_format``.
    """
    if log_format not in ("json", "text"):
        raise ValueError(f"LOG_FORMAT: expected json or text, not {log_format!r}")
    shared = _shared_processors()
    final: list[Processor] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if log_format == "json":
        final.append(structlog.processors.format_exc_info)
    stream = stream if stream is not None else sys.stderr
    final.append(_renderer(log_format, stream))
    formatter = structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=final)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
