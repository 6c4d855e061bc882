"""The fixed bounds of the Zaqar v2 contract, and the page-size checks.

Configurable bounds are ``[limits]`` options (``herald.common.config.limits``);
the ones here are fixed by the spec (semantics.md §1, rest-v2.md) and were
written out at each edge before. Each listing's limit check is here once,
with the reference's wording, which differs per resource.

Pure constants and functions; no I/O.
"""

from __future__ import annotations

from typing import Any

from herald.common.errors import BadRequest

#: Lower bounds of ttls and graces, in seconds.
MIN_MESSAGE_TTL = 60
MIN_CLAIM_TTL = 60
MIN_CLAIM_GRACE = 60
MIN_DLQ_MESSAGE_TTL = 60
MIN_MESSAGE_DELAY = 0

QUEUE_NAME_MAX = 64
PROJECT_ID_MAX = 256

#: JSON nesting bound of every request document, REST body or websocket
#: frame: the RPC serializer, the storage and msgpack's encoder all recurse,
#: so a deeper document would parse at the edge and fail later as a 500.
MAX_DEPTH = 128
#: Integers on the wire are signed 64-bit (semantics.md §1).
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

#: Page size of a listing, and number of messages of a claim, when the
#: client gives none.
DEFAULT_PAGE = 10
DEFAULT_CLAIM_LIMIT = 10


def queue_page(limit: int | None, limits: Any) -> None:
    """``limit`` of a queue (or topic) listing."""
    top = limits.max_queues_per_page
    if limit is not None and not 0 < limit <= top:
        raise BadRequest(f"Limit must be at least 1 and no greater than {top}.")


def message_page(limit: int | None, limits: Any) -> None:
    """``limit`` of a message listing (the websocket also bounds ``message_ids`` by it)."""
    top = limits.max_messages_per_page
    if limit is not None and not 0 < limit <= top:
        raise BadRequest(f"Limit must be at least 1 and may not be greater than {top}.")


def subscription_page(limit: int | None, limits: Any) -> None:
    top = limits.max_subscriptions_per_page
    if limit is not None and not 0 < limit <= top:
        raise BadRequest(f"Limit must be at least 1 and may not be greater than {top}.")
