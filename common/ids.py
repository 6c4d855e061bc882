"""Identifiers of messages, claims and subscriptions.

Ids are 32 lowercase hex digits (a UUID4 without dashes): they match the
``[a-zA-Z0-9_-]+`` pattern Zaqar's clients and tests expect. Anything else
can never name a stored object; storage answers "not found" for it without
a query, never an error.
"""

from __future__ import annotations

import re
import uuid

_ID_RE = re.compile(r"^[0-9a-f]{32}$")


def new_id() -> str:
    return uuid.uuid4().hex


def is_valid_id(value: object) -> bool:
    return isinstance(value, str) and _ID_RE.match(value) is not None
