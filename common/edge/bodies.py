"""Strict JSON request bodies (rest-v2.md §0.4) and typed field extraction.

Used for REST bodies; the websocket's frames are decoded by its codec (same
limits, ``limits.MAX_DEPTH``), and both edges use ``checked_int``.

Rules: the body must be valid UTF-8 and valid JSON (no NaN/Infinity, no
non-finite floats), its top level must be an object or an array (a scalar
counts as malformed), every integer must fit in signed 64 bits, and nesting
is limited to ``MAX_DEPTH`` levels. Anything else is a 400, never a 500: the
RPC serializer and the storage worker walk documents recursively, so a
deeper document would parse here and then fail with a RecursionError later.

No I/O and no knowledge of resources here; callers say which JSON type they
expect and which fields they need.
"""

from __future__ import annotations

import json
import math
from typing import Any

from herald.common.edge.limits import INT64_MAX, INT64_MIN, MAX_DEPTH
from herald.common.errors import InvalidBody
from herald.common.strict_json import loads_if_plain

EMPTY_BODY = "Request body can not be empty"
UNPARSEABLE = "Request body could not be parsed."
INT_TOO_LARGE = "JSON contains integer that is too large."
DOC_TYPE = "Document type not supported."
TOO_DEEP = f"Request body could not be parsed. JSON is nested deeper than {MAX_DEPTH} levels."


class _IntegerOverflow(ValueError):
    pass


def _parse_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:  # more digits than Python converts at all
        raise _IntegerOverflow(text[:20]) from exc
    if not INT64_MIN <= value <= INT64_MAX:
        raise _IntegerOverflow(text[:20])
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        # 1e400 would become Infinity, which is not JSON and cannot be echoed back.
        raise ValueError("non-finite number")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(raw: bytes) -> Any:
    """Parse ``raw`` strictly; raise InvalidBody with the reference wording."""
    if not raw:
        raise InvalidBody(EMPTY_BODY)
    document = loads_if_plain(raw, MAX_DEPTH)
    if document is None:
        document = _parse_strictly(raw)
    if not isinstance(document, dict | list):
        raise InvalidBody(UNPARSEABLE)
    return document


def _parse_strictly(raw: bytes) -> Any:
    """The standard library's parse, with every rule checked in Python."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidBody(UNPARSEABLE) from exc
    try:
        document = json.loads(text, parse_int=_parse_int, parse_float=_parse_float,
                              parse_constant=_reject_constant)
    except _IntegerOverflow as exc:
        raise InvalidBody(INT_TOO_LARGE) from exc
    except (ValueError, RecursionError) as exc:
        raise InvalidBody(UNPARSEABLE) from exc
    if _depth_exceeds(document, MAX_DEPTH):
        raise InvalidBody(TOO_DEEP)
    return document


def _depth_exceeds(document: Any, limit: int) -> bool:
    # Iterative on purpose: this check exists because recursion is unsafe here.
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(value, dict):
            stack.extend((item, depth + 1) for item in value.values()
                         if isinstance(item, dict | list))
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value if isinstance(item, dict | list))
    return False


def require_object(document: Any) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise InvalidBody(DOC_TYPE)
    return document


def require_array(document: Any) -> list[Any]:
    if not isinstance(document, list):
        raise InvalidBody(DOC_TYPE)
    return document


_MISSING = object()


def checked_int(document: dict[str, Any], name: str, default: int | None,
                null_is_default: bool = False) -> int:
    """``document[name]`` as an int (bool counts, as in the reference).

    Missing → ``default`` (400 ``Missing "<name>" field.`` when there is none);
    ``null`` → ``default`` only when ``null_is_default``; any other type → 400.
    """
    value = document.get(name, _MISSING)
    if value is _MISSING or (value is None and null_is_default):
        if default is None:
            raise InvalidBody(f'Missing "{name}" field.')
        return default
    if isinstance(value, int):
        return int(value)
    raise InvalidBody(f'The value of the "{name}" field must be a int.')
