"""Query-string parsing with the Zaqar v2 rules (rest-v2.md §0.3), REST only.

* integers are decimal (an optional sign allowed, so ``-1`` reaches the range
  check and gets the range message rather than "invalid");
* booleans accept ``true True t yes y 1 on`` / ``false False f no n 0 off``;
* a parameter with an empty value is treated as absent;
* list parameters merge comma-separated values and repeated keys in order.

Pure parsing only: no range checks here (the rules the parsed values must
pass are ``herald.common.edge``, shared with the websocket, which has typed
JSON bodies and no query string), and nothing here touches the request object.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable

from herald.api.errors import invalid_parameter

_TRUE = frozenset({"true", "True", "t", "yes", "y", "1", "on"})
_FALSE = frozenset({"false", "False", "f", "no", "n", "0", "off"})
_INT_RE = re.compile(r"^[+-]?[0-9]+$")


def looks_like_int(value: str) -> bool:
    return _INT_RE.match(value) is not None


class QueryParams:
    """The parameters of one query string, in request order, empty values dropped."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._pairs = [(key, value) for key, value in pairs if value != ""]

    @classmethod
    def parse(cls, query: str) -> QueryParams:
        # Invalid percent-encoded UTF-8 becomes U+FFFD rather than an error:
        # such a value can never be a valid name, id or number anyway, and the
        # specific check that rejects it gives the better message.
        return cls(urllib.parse.parse_qsl(query, keep_blank_values=True,
                                          encoding="utf-8", errors="replace"))

    def keys(self) -> list[str]:
        seen: dict[str, None] = {}
        for key, _value in self._pairs:
            seen.setdefault(key, None)
        return list(seen)

    def __contains__(self, name: str) -> bool:
        return any(key == name for key, _value in self._pairs)

    def get_str(self, name: str) -> str | None:
        """The last non-empty value of ``name`` (repeats of scalars: last wins)."""
        found = None
        for key, value in self._pairs:
            if key == name:
                found = value
        return found

    def get_int(self, name: str) -> int | None:
        value = self.get_str(name)
        if value is None:
            return None
        if not looks_like_int(value):
            raise invalid_parameter(name, "The value must be an integer.")
        return int(value)

    def get_bool(self, name: str) -> bool | None:
        value = self.get_str(name)
        if value is None:
            return None
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise invalid_parameter(name, 'The value of the parameter must be "true" or "false".')

    def get_list(self, name: str) -> list[str] | None:
        """Comma-separated values and repeated keys merged in order; empty items dropped."""
        items: list[str] | None = None
        for key, value in self._pairs:
            if key == name:
                items = items if items is not None else []
                items.extend(part for part in value.split(",") if part)
        if items is not None and not items:
            return None  # e.g. "?ids=," carries no value at all: treat as absent
        return items


def render_query(params: list[tuple[str, object]]) -> str:
    """``key=value&...`` for pagination links: booleans as true/false, lists comma-joined."""
    rendered = []
    for key, value in params:
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, list | tuple):
            text = ",".join(str(item) for item in value)
        else:
            text = str(value)
        rendered.append((key, text))
    return urllib.parse.urlencode(rendered, safe=",")
