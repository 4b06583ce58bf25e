"""Shared configuration: read the environment once, hand both sides one object.

>>> settings = load_settings()
>>> app.config.update(settings.flask_config())
>>> tornado.web.Application(rules, **settings.tornado_settings())
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings
from sqlalchemy.engine import make_url

from config.settings import INSTANCE_PATH, PROJECT_ROOT, Settings
from config.unknown import check_variables

__all__ = [
    "INSTANCE_PATH",
    "PROJECT_ROOT",
    "ConfigError",
    "Settings",
    "check_unknown_variables",
    "load_feature_settings",
    "load_settings",
]

S = TypeVar("S", bound=BaseSettings)


class ConfigError(Exception):
    """The configuration is invalid; ``str(error)`` is one line per problem,
    each naming the environment variable and what it expects."""


def load_settings(**overrides: Any) -> Settings:
    """Read and validate the settings from the environment and ``.env``.

    :param overrides: field values that win over the environment (tests, CLI
        options such as ``--port``), by field name (``port=0``).
    :returns: the validated :class:`Settings`.
    :raises ConfigError: naming each invalid variable, e.g.
        ``PORT: Input should be a valid integer (got 'abc')``.
    """
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise ConfigError(_describe(error)) from None


def load_feature_settings(model: type[S], **overrides: Any) -> S:
    """Read a feature's own settings (a ``BaseSettings`` subclass) like :func:`load_settings`.

    A feature keeps its variables in its own model (e.g. ``app/orders/settings.py``),
    so deleting the feature deletes them too; they
    come from the same environment and ``.env``, and fail the same way.

    :param model: the feature's settings class.
    :param overrides: field values that win over the environment.
    :raises ConfigError: naming each invalid variable.
    """
    try:
        return model(**overrides)
    except ValidationError as error:
        raise ConfigError(_describe(error)) from None


def check_unknown_variables(
    settings: Settings, feature_models: Iterable[type[BaseSettings]] = ()
) -> list[str]:
    """Refuse (production) or log (elsewhere) variables that look like settings but are not.

    ``APP_*``/``FLASK_*`` names and near-misses of known names in the environment or
    ``.env`` that neither :class:`Settings` nor a feature's model reads
    (:mod:`config.unknown`), e.g. ``SECERT_KEY`` or ``APP_THREADS``.

    :param settings: the loaded settings (``app_env`` decides: refuse in production).
    :param feature_models: the features' settings models (``Feature.settings``).
    :returns: one message per unknown variable (outside production).
    :raises ConfigError: in production, naming each variable and the closest known name.
    """
    try:
        return check_variables(
            [Settings, *feature_models], os.environ, settings.app_env == "production"
        )
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if not location:  # a cross-field rule; its message names the variable
            lines.append(message)
        else:
            got = item.get("input")
            if location in ("database_url", "redis_url") and isinstance(got, str):
                got = _hide_password(got)
            lines.append(f"{location.upper()}: {message} (got {got!r})")
    return "; ".join(lines)


def _hide_password(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: nothing recognisable to hide
        return url
