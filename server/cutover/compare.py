"""The comparison rules of a shadow run and of the parity tests: one implementation.

Two answers to the same request -- the Flask view's and the native handler's --
are compared as a client observes them:

* the status code;
* the headers named in ``headers`` (by default :data:`COMPARED_HEADERS`; absent
  on both sides is equal; ``Allow`` as a set of methods, RFC 9110 section 10.2.1);
* the body: as data when both are JSON (key order and spacing do not matter),
  after replacing the fields named in ``ignore`` with :data:`IGNORED`; else as bytes.

:func:`differences` lists what differs as readable lines, with a unified diff of
the bodies (``-`` Flask, ``+`` native). Used by :mod:`server.cutover.shadow` on
live traffic and by ``tests/support/parity.py`` in the tests; :func:`bounded`
cuts a list of lines to a size fit for one log record.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

COMPARED_HEADERS = (
    "content-type",
    "location",
    "allow",
    "vary",
    "cache-control",
    "www-authenticate",
    "content-disposition",
    "retry-after",
)
"""Headers compared by default. ``Date``, ``Server``, ``Content-Length`` (it
follows the body, which is compared) and ``X-Request-ID`` (new per request)
are left out."""

CHANGED_PATHS_MAX = 10
"""JSON paths :func:`changed_paths` names at most."""

CHANGED_PATHS_DEPTH = 32
"""Nesting levels :func:`changed_paths` descends; deeper, the whole value counts as changed."""

IGNORED = "<ignored>"
"""What an ignored JSON field is replaced with on both sides."""


@dataclass(frozen=True)
class Reply:
    """One side's response.

    :ivar side: ``"flask"`` or ``"native"``.
    :ivar status: the HTTP status code.
    :ivar headers: every header, names lower-case; repeated headers joined with ``", "``.
    :ivar body: the body bytes (empty for ``HEAD``).
    """

    side: str
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The body decoded as JSON.

        :raises ValueError: if the body is not JSON.
        """
        return json.loads(self.body)


DIFF_MAX_LINES = 40
"""At most this many lines of a difference are logged (:func:`bounded`)."""

DIFF_MAX_LINE_CHARS = 200
"""At most this many characters of each logged line (:func:`bounded`)."""


def _mask(data: Any, path: list[str]) -> Any:
    """Replace the field at ``path`` (``*`` = every key or item) with :data:`IGNORED`."""
    if not path:
        return IGNORED
    head, rest = path[0], path[1:]
    if isinstance(data, dict):
        keys = list(data) if head == "*" else [head] if head in data else []
        return {k: (_mask(v, rest) if k in keys else v) for k, v in data.items()}
    if isinstance(data, list) and (head == "*" or head.isdigit()):
        return [
            _mask(item, rest) if head == "*" or int(head) == index else item
            for index, item in enumerate(data)
        ]
    return data


def _as_json(reply: Reply, ignore: Iterable[str]) -> Any:
    data = reply.json()
    for dotted in ignore:
        data = _mask(data, dotted.split("."))
    return data


def _is_json(reply: Reply) -> bool:
    content_type = reply.headers.get("content-type", "").split(";")[0].strip()
    if not (content_type == "application/json" or content_type.endswith("+json")):
        return False
    try:
        reply.json()
    except ValueError:
        return False
    return True


def _methods(allow: str) -> set[str]:
    """The methods of an ``Allow`` value, as a set."""
    return {method.strip() for method in allow.split(",") if method.strip()}


def _body_lines(reply: Reply, ignore: Iterable[str], as_json: bool) -> list[str]:
    if as_json:
        return json.dumps(_as_json(reply, ignore), indent=2, sort_keys=True).splitlines()
    return reply.body.decode("utf-8", "backslashreplace").splitlines()


def differences(
    flask: Reply,
    native: Reply,
    *,
    headers: Iterable[str] = COMPARED_HEADERS,
    ignore: Iterable[str] = (),
    same_bytes: bool = False,
) -> list[str]:
    """Return the differences between two replies as readable lines (empty: parity).

    :param flask: the Flask view's reply.
    :param native: the native handler's reply.
    :param headers: header names to compare (any case).
    :param ignore: JSON fields left out of the body comparison, as dotted paths:
        ``"created_at"``, ``"item.updated_at"``, ``"items.*.id"`` (``*`` is any
        key or list item).
    :param same_bytes: also require equal body bytes when both are JSON (key
        order, spacing and the final newline count); ignored when ``ignore``
        is given.
    """
    ignore = list(ignore)
    lines: list[str] = []
    if flask.status != native.status:
        lines.append(f"status: flask {flask.status}, native {native.status}")
    for name in headers:
        key = name.lower()
        ours, theirs = flask.headers.get(key), native.headers.get(key)
        if key == "allow" and ours and theirs and _methods(ours) == _methods(theirs):
            continue
        if ours != theirs:
            lines.append(f"header {key}: flask {ours!r}, native {theirs!r}")
    both_json = _is_json(flask) and _is_json(native)
    if both_json:
        same = _as_json(flask, ignore) == _as_json(native, ignore)
        if same and same_bytes and not ignore and flask.body != native.body:
            lines.append("body (bytes of equal JSON data):")
            lines.append(f"  flask  {flask.body!r}")
            lines.append(f"  native {native.body!r}")
    else:
        same = flask.body == native.body
    if not same:
        kind = "JSON data" + (f", ignoring {', '.join(ignore)}" if ignore else "")
        lines.append(f"body ({kind if both_json else 'bytes'}):")
        if both_json:
            # Where first: a long diff cut for a log line still names every change.
            paths = changed_paths(_as_json(flask, ignore), _as_json(native, ignore))
            lines.append(f"  differs at: {', '.join(paths)}")
        diff = difflib.unified_diff(
            _body_lines(flask, ignore, both_json),
            _body_lines(native, ignore, both_json),
            fromfile="flask",
            tofile="native",
            lineterm="",
        )
        lines.extend(f"  {line}" for line in diff)
    return lines


def changed_paths(flask: Any, native: Any, limit: int = CHANGED_PATHS_MAX) -> list[str]:
    """Name where two JSON documents differ, as dotted paths (``status``, ``items.2.id``).

    :param flask: the Flask side's decoded JSON.
    :param native: the native side's decoded JSON.
    :param limit: paths named at most; more are summed up as ``+N more``.
    :returns: paths in document order, each with ``(flask only)`` or ``(native only)``
        when one side lacks it; ``<root>`` when the documents differ at the top.
    """
    found: list[str] = []

    def walk(ours: Any, theirs: Any, path: str, depth: int) -> None:
        if ours == theirs:
            return
        if depth < CHANGED_PATHS_DEPTH and isinstance(ours, dict) and isinstance(theirs, dict):
            for key in [*ours, *(k for k in theirs if k not in ours)]:
                where = f"{path}.{key}" if path else str(key)
                if key not in theirs:
                    found.append(f"{where} (flask only)")
                elif key not in ours:
                    found.append(f"{where} (native only)")
                else:
                    walk(ours[key], theirs[key], where, depth + 1)
            return
        if (
            depth < CHANGED_PATHS_DEPTH
            and isinstance(ours, list)
            and isinstance(theirs, list)
            and len(ours) == len(theirs)
        ):
            for index, (left, right) in enumerate(zip(ours, theirs, strict=True)):
                walk(left, right, f"{path}.{index}" if path else str(index), depth + 1)
            return
        found.append(path or "<root>")

    walk(flask, native, "", 0)
    if len(found) > limit:
        found[limit:] = [f"+{len(found) - limit} more"]
    return found


def bounded(
    lines: Iterable[str],
    max_lines: int = DIFF_MAX_LINES,
    max_chars: int = DIFF_MAX_LINE_CHARS,
) -> list[str]:
    """Cut ``lines`` to a size fit for one log record.

    :param lines: e.g. what :func:`differences` returned.
    :param max_lines: lines kept (the first ones); the rest are replaced by one
        line ``... N more lines cut``.
    :param max_chars: characters kept of each line; a longer one ends with
        ``... (N characters cut)``.
    :returns: a new list of at most ``max_lines + 1`` lines.
    """
    lines = list(lines)
    kept = [
        line
        if len(line) <= max_chars
        else f"{line[:max_chars]}... ({len(line) - max_chars} characters cut)"
        for line in lines[:max_lines]
    ]
    if len(lines) > max_lines:
        kept.append(f"... {len(lines) - max_lines} more lines cut")
    return kept
