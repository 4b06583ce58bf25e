"""Input validation shared by Flask views and native handlers.

One layer, so that both sides refuse the same input the same way:

* :func:`decode_json_object` turns a request body into a JSON object, or
  raises :class:`MalformedBody` (400 on both sides): not JSON, not an object,
  or nested deeper than :data:`MAX_JSON_DEPTH` -- checked on the text *before*
  decoding, since Python's decoder recurses (a body of 100,000 ``[`` would
  otherwise be a ``RecursionError``). :func:`nesting_depth` checks data built
  in Python against the same limit.
* :data:`PlainText` is the pydantic type of every free-text field: it refuses
  control characters other than tab and newline, and lone surrogates -- text
  that PostgreSQL refuses (NUL) or UTF-8 cannot carry -- so every database
  stores the same text.
* :class:`NoControlCharacters` is the same check as a WTForms validator, for
  HTML forms (the account forms): the field's error names the character.
* :class:`InvalidInput` is the one "your input is wrong" error of the service:
  both sides answer it 422 ``{"error": "validation failed", "fields": {...}}``
  (mapped in :func:`app.errors.register_error_handlers`). :func:`parse` turns a
  pydantic model's verdict into it, keeping at most
  :data:`MAX_REPORTED_ERRORS` problems and counting the rest.
"""

from __future__ import annotations

import itertools
import json
import math
import operator
import re
from collections.abc import Iterable
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ValidationError
from pydantic_core import PydanticCustomError
from wtforms import Field, Form
from wtforms import validators as wtforms_validators

M = TypeVar("M", bound=BaseModel)

MAX_JSON_DEPTH = 512
"""Deepest nesting of arrays and objects a JSON body may have (``{"a": [1]}`` is 2).

Far more than any form of input here needs (issue 13 keeps a 500-deep
``params`` a 422 of the kind's model), and far below what the decoder's
recursion reaches (about 1,000 levels, less the stack in use).
"""

MAX_JSON_BODY = 1024 * 1024
"""Largest JSON request body decoded, in bytes (1 MiB); a larger one is 413 unread.

Decoding holds the GIL: an 80 MB array of small arrays took 24 s and 2.3 GB,
and stalled the IOLoop (``/healthz`` included) for all of it, on either side.
The largest input the example takes is a ``params`` object (64 KiB) or a note (2,000
characters); 1 MiB leaves room for any of them and bounds the work to
milliseconds.
"""

MAX_REPORTED_ERRORS = 10
"""Most problems one :class:`InvalidInput` lists; the rest are only counted (``more``)."""

MAX_FIELD_PATH_LENGTH = 100
"""Longest field path reported, in characters; a longer one (an unknown key) is cut."""

EXTRA_FORBIDDEN = "Extra inputs are not permitted"
"""pydantic's message for an unknown key of a model with ``extra="forbid"``."""

_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_OPENS_AS_TWO = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")
_FORBIDDEN_CHARACTER = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


class MalformedBody(ValueError):
    """The request body is not a usable JSON object; nothing was read. Answered 400.

    ``str(error)`` is the message, e.g. ``"the body must be a JSON object"``.
    """


class JSONBodyTooLarge(MalformedBody):
    """The JSON body is over :data:`MAX_JSON_BODY` bytes; nothing was decoded. Answered 413."""


class InvalidInput(ValueError):
    """Input is invalid; nothing was written.

    :param fields: problems by field path (``"kind"``, ``"params.steps"``,
        ``"body"``), each a short message; shown to users and returned by the
        API as ``{"error": "validation failed", "fields": {...}}`` with 422.
    :param more: how many further problems were found but not listed
        (``"more": n`` in the answer when above 0).
    """

    def __init__(self, fields: dict[str, str], more: int = 0) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields
        self.more = more


def json_depth(text: str) -> int:
    """Return how deeply arrays and objects nest in the JSON ``text``, without recursing.

    Strings are skipped (their brackets do not count); the rest is only
    counted, not checked: for text that is not JSON the figure means little,
    and the decoder refuses it anyway. Linear in the length, in C loops.

    :param text: JSON text, e.g. ``'{"a": [1, "]"]}'`` (2).
    :returns: the greatest depth, 0 for a scalar.
    """
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text)).encode("ascii")
    # Depth after the i-th bracket = opened - closed = 2 * opened - i.
    doubled_opens = itertools.accumulate(brackets.translate(_OPENS_AS_TWO))
    return max(map(operator.sub, doubled_opens, itertools.count(1)), default=0)


def nesting_depth(value: Any) -> int:
    """Return how deeply lists and dicts nest in ``value``, without recursing.

    For data built in Python (a JSON body is checked as text by
    :func:`decode_json_object`); stops counting past :data:`MAX_JSON_DEPTH`.

    :param value: any object; only ``dict`` values and ``list``/``tuple`` items are entered.
    :returns: the greatest depth (``{"a": [1]}`` is 2), at most ``MAX_JSON_DEPTH + 1``.
    """
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        children: Iterable[Any]
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        if deepest > MAX_JSON_DEPTH:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


def decode_json_object(data: bytes) -> dict[str, Any]:
    """Decode a request body that must be a JSON object (RFC 8259), depth checked first.

    :param data: the body's bytes (UTF-8, or UTF-16/32 as :func:`json.loads` detects).
    :returns: the object.
    :raises JSONBodyTooLarge: over :data:`MAX_JSON_BODY` bytes (413), before any work.
    :raises MalformedBody: not JSON (``"the body must be a JSON object"``), or
        nested deeper than :data:`MAX_JSON_DEPTH` (``"the body nests arrays and
        objects N levels deep; at most 512 are accepted"``).
    """
    if len(data) > MAX_JSON_BODY:
        raise JSONBodyTooLarge(
            f"the JSON body is {len(data):,} bytes; at most {MAX_JSON_BODY:,} are accepted"
        )
    try:
        text = data.decode(json.detect_encoding(data), "surrogatepass")
    except UnicodeDecodeError:
        raise MalformedBody("the body must be a JSON object") from None
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise MalformedBody(
            f"the body nests arrays and objects {depth} levels deep; "
            f"at most {MAX_JSON_DEPTH} are accepted"
        )
    try:
        body = json.loads(text or "null", parse_float=_finite_float)
    except _NumberOutOfRange as error:
        raise MalformedBody(str(error)) from None
    except json.JSONDecodeError:
        body = None
    except ValueError:  # int() refuses over 4300 digits (sys.get_int_max_str_digits)
        raise MalformedBody(
            "the body holds a number too long to read (more than 4300 digits)"
        ) from None
    if not isinstance(body, dict):
        raise MalformedBody("the body must be a JSON object")
    return body


class _NumberOutOfRange(ValueError):
    """A JSON number no float can hold (``1e400``): refused while decoding."""


def _finite_float(text: str) -> float:
    """``parse_float`` for :func:`json.loads`: the number, unless it overflows to infinity.

    RFC 8259 section 6 lets an implementation limit the range of numbers; Python
    turns ``1e400`` into ``inf``, which no JSON can carry back, so it is refused.
    """
    value = float(text)
    if math.isinf(value):
        raise _NumberOutOfRange(f"the body holds a number out of range: {text[:40]}")
    return value


def plain_text(value: str) -> str:
    """Refuse ``value`` if it holds a control character other than tab and newline.

    Line breaks sent as CR LF -- as HTML forms send a ``<textarea>``'s (WHATWG
    HTML, "converting an entry list to a name-value pairs list") -- become LF
    first; a lone CR is refused. Also refused: a lone surrogate (``"\\ud800"``
    in JSON), which no UTF-8 database column can store. The check behind
    :data:`PlainText`.

    :param value: the text, e.g. ``"line one\\r\\nline two"``.
    :returns: the text with CR LF as LF.
    :raises pydantic_core.PydanticCustomError: ``control_character``, naming the
        first such character (``U+0000``); pydantic reports it on the field.
    """
    value = value.replace("\r\n", "\n")
    found = _FORBIDDEN_CHARACTER.search(value)
    if found is not None:
        raise PydanticCustomError(
            "control_character",
            "must not contain {character}: only printable text, tabs and newlines",
            {"character": f"U+{ord(found.group()):04X}"},
        )
    return value


PlainText = Annotated[str, AfterValidator(plain_text)]
"""A free-text field (a name, a note): a ``str`` without control characters but tab and newline."""


class NoControlCharacters:
    """WTForms validator: :func:`plain_text`'s check on a form field's text.

    A field holding a control character other than tab and newline (a NUL,
    which PostgreSQL cannot store or compare, ESC, DEL, a C1 control) or a lone
    surrogate gets the error ``Must not contain U+0000: only printable text,
    tabs and newlines.``; the view answers the form again with 422. CR LF in
    the text becomes LF (``field.data`` is replaced), as for :data:`PlainText`.
    Fields whose data is not a ``str`` (empty, or not text) are left alone.
    """

    def __call__(self, form: Form, field: Field) -> None:
        """Check ``field.data``.

        :param form: the form being validated (unused).
        :param field: the field to check.
        :raises wtforms.validators.ValidationError: naming the first control character.
        """
        if not isinstance(field.data, str):
            return
        try:
            field.data = plain_text(field.data)
        except PydanticCustomError as error:
            message = error.message()
            raise wtforms_validators.ValidationError(
                f"{message[:1].upper()}{message[1:]}."
            ) from None


def _field_path(loc: tuple[int | str, ...], prefix: str) -> str:
    path = prefix + (".".join(map(str, loc)) or "body")
    if len(path) > MAX_FIELD_PATH_LENGTH:
        path = path[: MAX_FIELD_PATH_LENGTH - 1] + "…"
    return path


def _unknown_keys(model: type[BaseModel], data: Any) -> list[str]:
    """The keys of ``data`` that ``model`` forbids (``extra="forbid"``), in their order."""
    if model.model_config.get("extra") != "forbid" or not isinstance(data, dict):
        return []
    known = set(model.model_fields)
    known.update(f.alias for f in model.model_fields.values() if f.alias)
    return [key for key in data if key not in known]


def parse(model: type[M], data: Any, prefix: str = "") -> M:
    """Validate ``data`` against the pydantic ``model``.

    The work and the answer stay bounded: at most
    :data:`MAX_REPORTED_ERRORS` problems are listed, the rest counted; unknown
    keys of a model that forbids them are counted without asking pydantic to
    describe each one (a body of 200,000 unknown keys costs a set lookup each).

    :param model: a pydantic model class.
    :param data: decoded JSON (any shape; a non-object fails on every field).
    :param prefix: prepended to field paths in errors (``"params."``).
    :returns: the validated model instance.
    :raises InvalidInput: naming the first invalid fields, ``more`` counting the others.
    """
    unknown = _unknown_keys(model, data)
    problems: list[tuple[str, str]] = []
    count = len(unknown)
    try:
        if not unknown:
            return model.model_validate(data)
        forbidden = set(unknown)
        model.model_validate({k: v for k, v in data.items() if k not in forbidden})
    except ValidationError as error:
        count += error.error_count()
        items = error.errors(include_url=False, include_context=False, include_input=False)
        problems = [(_field_path(item["loc"], prefix), item["msg"]) for item in items]
    problems += [
        (_field_path((key,), prefix), EXTRA_FORBIDDEN) for key in unknown[:MAX_REPORTED_ERRORS]
    ]
    fields: dict[str, str] = {}
    for path, message in problems[:MAX_REPORTED_ERRORS]:
        fields.setdefault(path, message)
    raise InvalidInput(fields, more=count - len(fields))
