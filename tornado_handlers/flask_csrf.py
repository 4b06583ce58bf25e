"""Flask-WTF's CSRF token, checked by native handlers: one scheme for both sides.

Flask-WTF keeps a random value in the session (``session["csrf_token"]``) and gives
pages that value signed with a timestamp (``csrf_token()`` in templates, the
``<meta name="csrf-token">`` of ``base.html``): itsdangerous'
``URLSafeTimedSerializer(WTF_CSRF_SECRET_KEY or SECRET_KEY, salt="wtf-csrf-token")``.
:func:`validate_token` is :func:`flask_wtf.csrf.validate_csrf` without Flask's
request context: the same configuration keys, serializer, time limit and messages,
with the session a native handler read from Flask's cookie. A token from a Flask
page is therefore good for a native handler, and the other way round.

``WTF_CSRF_SECRET_KEY`` may be a list of keys, newest last (``config`` sets
``[*SECRET_KEY_FALLBACKS, SECRET_KEY]``): itsdangerous verifies with each, so tokens
issued before a key rotation stay valid.

Pure: no Tornado, no sockets.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from itsdangerous import BadData, SignatureExpired, URLSafeTimedSerializer

__all__ = ["SALT", "CSRFError", "csrf_config", "same_origin_referrer", "validate_token"]

SALT = "wtf-csrf-token"
"""The itsdangerous salt Flask-WTF signs CSRF tokens with."""


class CSRFError(Exception):
    """The CSRF check failed; ``str(error)`` is Flask-WTF's message for the reason.

    E.g. ``"The CSRF token is missing."``, ``"The CSRF token is invalid."``,
    ``"The CSRF token has expired."``, ``"The CSRF session token is missing."``,
    ``"The CSRF tokens do not match."``, ``"The referrer header is missing."``,
    ``"The referrer does not match the host."``.
    """


def csrf_config(flask_app: Flask) -> dict[str, Any]:
    """Flask-WTF's settings from ``flask_app.config``, with its defaults.

    :returns: ``enabled`` (bool), ``methods`` (set of str), ``field_name`` (str),
        ``headers`` (list of str), ``time_limit`` (seconds or None), ``ssl_strict``
        (bool) and ``secret_key`` (str or list of str, newest last).
    """
    config = flask_app.config
    return {
        "enabled": bool(config.get("WTF_CSRF_ENABLED", True)),
        "methods": set(config.get("WTF_CSRF_METHODS", ("POST", "PUT", "PATCH", "DELETE"))),
        "field_name": config.get("WTF_CSRF_FIELD_NAME", "csrf_token"),
        "headers": list(config.get("WTF_CSRF_HEADERS", ("X-CSRFToken", "X-CSRF-Token"))),
        "time_limit": config.get("WTF_CSRF_TIME_LIMIT", 3600),
        "ssl_strict": bool(config.get("WTF_CSRF_SSL_STRICT", True)),
        "secret_key": config.get("WTF_CSRF_SECRET_KEY") or flask_app.secret_key,
    }


def validate_token(flask_app: Flask, session: Mapping[str, Any], token: str | None) -> None:
    """Check ``token`` against ``session`` as :func:`flask_wtf.csrf.validate_csrf` does.

    :param flask_app: the app whose ``WTF_CSRF_*`` / ``SECRET_KEY`` settings apply.
    :param session: the request's Flask session (from its verified cookie).
    :param token: the signed token the client sent (header or form field), or None.
    :raises CSRFError: with Flask-WTF's message when the token is missing, badly
        signed, older than ``WTF_CSRF_TIME_LIMIT`` seconds, or not this session's.
    """
    config = csrf_config(flask_app)
    field_name = config["field_name"]
    if not token:
        raise CSRFError("The CSRF token is missing.")
    if field_name not in session:
        raise CSRFError("The CSRF session token is missing.")
    serializer = URLSafeTimedSerializer(config["secret_key"], salt=SALT)
    try:
        value = serializer.loads(token, max_age=config["time_limit"])
    except SignatureExpired:
        raise CSRFError("The CSRF token has expired.") from None
    except BadData:
        raise CSRFError("The CSRF token is invalid.") from None
    expected = session[field_name]
    if not (
        isinstance(value, str)
        and isinstance(expected, str)
        and hmac.compare_digest(expected, value)
    ):
        raise CSRFError("The CSRF tokens do not match.")


def same_origin_referrer(referrer: str | None, host: str) -> None:
    """Flask-WTF's ``WTF_CSRF_SSL_STRICT`` rule for https requests: a same-origin ``Referer``.

    :param referrer: the ``Referer`` header, or None.
    :param host: the request's ``Host`` (after a trusted proxy's ``X-Forwarded-Host``).
    :raises CSRFError: the referrer is missing, or not ``https://<host>``.
    """
    if not referrer:
        raise CSRFError("The referrer header is missing.")
    parts = urlsplit(referrer)
    if parts.scheme != "https" or parts.netloc != host:
        raise CSRFError("The referrer does not match the host.")
