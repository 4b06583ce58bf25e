"""Variables that look like ours but are not: typos and settings from another version.

pydantic-settings ignores variables no model declares (``extra="ignore"``), so
``SECRET_KEY_FALLBAKS=...`` or ``APP_THREADS=8`` would be dropped without a word.
:func:`check_variables` looks at the environment and ``.env`` at start-up for names
that are not a setting of any model in use (``Settings`` and each feature's) but

* start with one of :data:`PREFIXES` (``APP_``, ``FLASK_``), except Flask's own CLI
  variables (:data:`ALLOWED`); or
* are a near-miss of a known name (:func:`difflib.get_close_matches`, similarity
  :data:`CUTOFF`), e.g. ``SECERT_KEY`` for ``SECRET_KEY``.

In production they are refused (:class:`config.ConfigError`, naming the variable and
the closest known name): a deployment must not run with a setting it believes it
made. Elsewhere each is logged as a warning, so a developer's shell full of
unrelated variables never stops the server.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

from dotenv import dotenv_values
from pydantic_settings import BaseSettings

__all__ = ["ALLOWED", "CUTOFF", "PREFIXES", "check_variables", "known_variables", "unknown"]

log = logging.getLogger("hybrid.config")

PREFIXES = ("APP_", "FLASK_")
"""Prefixes that mark a variable as meant for this service."""

ALLOWED = frozenset(
    {
        "FLASK_APP",
        "FLASK_DEBUG",
        "FLASK_ENV",
        "FLASK_SKIP_DOTENV",
        "FLASK_RUN_FROM_CLI",
        "FLASK_RUN_HOST",
        "FLASK_RUN_PORT",
        "FLASK_RUN_CERT",
        "FLASK_RUN_KEY",
        "FLASK_RUN_RELOAD",
        "FLASK_RUN_DEBUGGER",
        "FLASK_RUN_WITH_THREADS",
        "FLASK_RUN_EXTRA_FILES",
        "FLASK_RUN_EXCLUDE_PATTERNS",
    }
)
"""``FLASK_*`` names Flask's CLI reads itself (``flask --help``, ``flask run``)."""

CUTOFF = 0.85
"""Similarity (0..1, :class:`difflib.SequenceMatcher` ratio) above which a name is a near-miss."""

MIN_NEAR_MISS_LENGTH = 6
"""Names shorter than this are never near-misses (``HOME`` is not a typo of ``HOST``)."""


def known_variables(models: Iterable[type[BaseSettings]]) -> set[str]:
    """The upper-case environment variable names the settings ``models`` read.

    :param models: ``BaseSettings`` classes; each field's name (or alias) with the
        model's ``env_prefix``.
    """
    names: set[str] = set()
    for model in models:
        prefix = str(model.model_config.get("env_prefix") or "")
        for name, field in model.model_fields.items():
            alias = field.validation_alias if isinstance(field.validation_alias, str) else None
            names.add((alias or prefix + name).upper())
    return names


def unknown(names: Iterable[str], known: set[str]) -> list[tuple[str, str | None]]:
    """Return ``(name, closest known name or None)`` for each name that looks like ours.

    :param names: variable names (any case) from the environment and ``.env``.
    :param known: :func:`known_variables`.
    :returns: sorted by name, without duplicates.
    """
    found: dict[str, str | None] = {}
    for raw in names:
        name = raw.upper()
        if name in known or name in ALLOWED or name in found:
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=CUTOFF)
        near = close[0] if close and len(name) >= MIN_NEAR_MISS_LENGTH else None
        if near is not None or name.startswith(PREFIXES):
            found[name] = near or _closest(name, known)
    return sorted(found.items())


def _closest(name: str, known: set[str]) -> str | None:
    close = difflib.get_close_matches(name.removeprefix("APP_"), sorted(known), n=1, cutoff=0.6)
    return close[0] if close else None


def check_variables(
    models: Iterable[type[BaseSettings]],
    environ: Mapping[str, str],
    production: bool,
    env_file: Path | None = Path(".env"),
) -> list[str]:
    """Refuse (production) or warn about variables that look like ours but are not settings.

    :param models: every settings model in use: ``Settings`` and the features'.
    :param environ: the environment (``os.environ``).
    :param production: refuse instead of warning.
    :param env_file: the ``.env`` file the settings read (relative to the working
        directory), or None.
    :returns: one message per unknown variable (each also logged as a warning).
    :raises ValueError: in production, the messages joined with ``"; "``.
    """
    names = list(environ)
    if env_file is not None and env_file.is_file():
        names.extend(dotenv_values(env_file))
    messages = []
    for name, closest in unknown(names, known_variables(models)):
        hint = f"; did you mean {closest}?" if closest else ""
        messages.append(f"{name}: not a setting of this service{hint}")
    if messages and production:
        raise ValueError("; ".join(messages))
    for message in messages:
        log.warning("ignored variable %s", message)
    return messages
