"""Is a secret key good enough for production? (``SECRET_KEY``, ``SECRET_KEY_FALLBACKS``).

:func:`check_production_key` refuses, with a message that names the variable and
says how to make a good key (:data:`HOW_TO_MAKE_A_KEY`):

* a key shorter than :data:`MIN_KEY_BYTES` bytes (UTF-8);
* a key of low entropy: fewer than :data:`MIN_ENTROPY_BITS` bits by the estimate of
  :func:`estimated_entropy_bits` (``aaaa...``, ``abcabc...``, ``0000-1111-...``);
* a known development or example key (:data:`KNOWN_KEYS`);
* any key written in a text file of the project (:func:`find_in_project`): a key that
  appears in the repository -- the test suite's, one in the docs, in an example
  ``.env`` or unit file -- is published, whoever made it.

Why a scan rather than only a list: the list cannot know the keys that later
commits, generated projects and their docs add; the scan finds every one of them,
and costs one bounded walk of the project at start-up, in production only
(a few milliseconds for this repository).
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "HOW_TO_MAKE_A_KEY",
    "KNOWN_KEYS",
    "MIN_ENTROPY_BITS",
    "MIN_KEY_BYTES",
    "check_production_key",
    "estimated_entropy_bits",
    "find_in_project",
]

MIN_KEY_BYTES = 32
"""Shortest key production accepts, in bytes (256 bits of room; HMAC-SHA1 keys are 64)."""

MIN_ENTROPY_BITS = 100.0
"""Least estimated entropy (bits, :func:`estimated_entropy_bits`) production accepts.

A key from :data:`HOW_TO_MAKE_A_KEY` estimates about 350 bits; ``secrets.token_hex(16)``
(32 hex digits, 128 random bits) about 110; ``"abc" * 11`` 52; ``"a" * 40`` 0.
"""

HOW_TO_MAKE_A_KEY = 'python -c "import secrets; print(secrets.token_urlsafe(48))"'
"""The command the error message suggests (64 characters, 384 random bits)."""

KNOWN_KEYS: frozenset[str] = frozenset({"dev-only-insecure-secret-key-change-me"})
"""Keys refused even when the project scan cannot see them (an installed package
without its sources): the skeleton's ``DEVELOPMENT_SECRET_KEY``."""

SKIPPED_DIRECTORIES = frozenset(
    {
        ".git",
        ".hg",
        ".venv",
        "venv",
        "instance",
        "node_modules",
        "__pycache__",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        "build",
        "dist",
        "htmlcov",
    }
)
"""Directories :func:`find_in_project` does not enter: virtualenvs, local data, caches, VCS."""

SKIPPED_FILES = frozenset({".env"})
"""Files :func:`find_in_project` does not read: ``.env`` holds this deployment's real key."""

MAX_FILE_BYTES = 1024 * 1024
"""Larger files are not read by :func:`find_in_project` (bytes)."""

MAX_FILES = 20_000
""":func:`find_in_project` stops after this many files."""

MAX_TOTAL_BYTES = 64 * 1024 * 1024
""":func:`find_in_project` stops after reading this many bytes in all."""


def estimated_entropy_bits(key: str) -> float:
    """Estimate the entropy of ``key``, in bits: Shannon entropy of its characters x length.

    ``H = -sum(p * log2(p))`` over the frequency ``p`` of each distinct character,
    times the number of characters. A rough, documented estimate, not a proof of
    randomness: it catches repeats and tiny alphabets (``aaaa``, ``abab``,
    ``0000-1111``), not a sequence of distinct characters (``abcdef...``), which the
    length and the project scan must catch, or a human.

    :param key: the key as configured.
    :returns: bits (``0.0`` for an empty key or one repeated character).
    """
    if not key:
        return 0.0
    counts = Counter(key)
    length = len(key)
    per_character = -sum((n / length) * math.log2(n / length) for n in counts.values())
    return max(0.0, per_character * length)


def _text_files(root: Path) -> Iterable[Path]:
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = sorted(
            d
            for d in subdirectories
            if d not in SKIPPED_DIRECTORIES and not d.endswith(".egg-info")
        )
        for name in sorted(files):
            if name not in SKIPPED_FILES:
                yield Path(directory, name)


def find_in_project(key: str, root: Path) -> Path | None:
    """Return a text file under ``root`` that contains ``key``, or ``None``.

    Walks ``root`` (the checkout, ``config.PROJECT_ROOT``) without entering
    :data:`SKIPPED_DIRECTORIES` or ``*.egg-info``, and without reading
    :data:`SKIPPED_FILES`, binary files (a NUL byte in the first 8 KiB) or files over
    :data:`MAX_FILE_BYTES`. Bounded: at most :data:`MAX_FILES` files and
    :data:`MAX_TOTAL_BYTES` bytes; unreadable files are skipped.

    :param key: the secret to look for (compared as UTF-8 bytes).
    :param root: the directory to search.
    :returns: the first file found containing ``key`` (in a sorted walk).
    """
    needle = key.encode()
    files = total = 0
    for path in _text_files(root):
        files += 1
        if files > MAX_FILES or total > MAX_TOTAL_BYTES:
            return None
        try:
            if not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
                continue
            data = path.read_bytes()
        except OSError:
            continue
        total += len(data)
        if b"\0" in data[:8192]:
            continue
        if needle in data:
            return path
    return None


def check_production_key(variable: str, key: str, root: Path | None) -> None:
    """Refuse ``key`` for production unless it is long, random-looking and unpublished.

    :param variable: the variable named in the error, e.g. ``"SECRET_KEY"`` or
        ``"SECRET_KEY_FALLBACKS[0]"``.
    :param key: the key.
    :param root: the project directory to search for the key (:func:`find_in_project`);
        ``None`` skips the search.
    :raises ValueError: ``"<variable>: <why>; make one with: <command>"``. The key
        itself is never part of the message.
    """
    problem: str | None = None
    if key in KNOWN_KEYS:
        problem = "is a published development key"
    elif len(key.encode()) < MIN_KEY_BYTES:
        problem = f"must be at least {MIN_KEY_BYTES} bytes when APP_ENV=production"
    elif (bits := estimated_entropy_bits(key)) < MIN_ENTROPY_BITS:
        problem = (
            f"has too little entropy (about {bits:.0f} bits, at least "
            f"{MIN_ENTROPY_BITS:.0f} needed: too few distinct characters, or repeats)"
        )
    elif root is not None and (found := find_in_project(key, root)) is not None:
        where = found.relative_to(root) if found.is_relative_to(root) else found
        problem = f"appears in the project's files ({where}), so it is not secret"
    if problem is not None:
        raise ValueError(f"{variable}: {problem}; make one with: {HOW_TO_MAKE_A_KEY}")
