"""Claim rules (rest-v2.md §5, websocket.md §5 "Claims"), in the spec's
order: body types, then ttl range, then limit range, then grace range.

REST reads ttl and grace from an optional JSON body (``rest_*``: ``null``
counts as absent, python-zaqarclient sends it; Quirk #6); the websocket's
schema has already made them integers. A renewal checks only the ttl, and a
missing ttl or grace resets to the default (Quirk #5), on both edges.
``release_on_close`` (Herald's, docs/api-extensions.md) is read last, on
both edges: only a websocket request has a connection to tie a claim to.
Pure; no storage access.
"""

from __future__ import annotations

from typing import Any

from herald.common.edge.bodies import checked_int, require_object
from herald.common.edge.limits import DEFAULT_CLAIM_LIMIT, MIN_CLAIM_GRACE, MIN_CLAIM_TTL
from herald.common.errors import BadRequest


def check_ttl(ttl: int, limits: Any) -> None:
    maximum = limits.max_claim_ttl
    if not MIN_CLAIM_TTL <= ttl <= maximum:
        raise BadRequest(f"The TTL for a claim may not exceed {maximum} seconds, and must be "
                         f"at least {MIN_CLAIM_TTL} seconds long.")


def check_create(ttl: int, grace: int, limit: int | None, limits: Any) -> int:
    """Ranges of a new claim, in order: ttl, limit, grace. Returns the limit
    to use (the default when the client gave none)."""
    check_ttl(ttl, limits)
    maximum = limits.max_messages_per_claim_or_pop
    if limit is not None and not 0 < limit <= maximum:
        raise BadRequest(f"Limit must be at least 1 and may not be greater than {maximum}.")
    max_grace = limits.max_claim_grace
    if not MIN_CLAIM_GRACE <= grace <= max_grace:
        raise BadRequest(f"The grace for a claim may not exceed {max_grace} seconds, and must "
                         f"be at least {MIN_CLAIM_GRACE} seconds long.")
    return DEFAULT_CLAIM_LIMIT if limit is None else limit


RELEASE_ON_CLOSE = "release_on_close"


def release_on_close(value: Any, over_websocket: bool) -> bool:
    """Whether a new or renewed claim is registered with the request's
    websocket connection (released when it closes).

    Absent, null or false: no (a renewal then drops any registration).
    True over REST is refused rather than ignored: the client would believe
    its claim is released if it dies, and no connection exists to do it.
    """
    if value is None or value is False:
        return False
    if value is not True:
        raise BadRequest(f"{RELEASE_ON_CLOSE} must be a boolean.")
    if not over_websocket:
        raise BadRequest(f"{RELEASE_ON_CLOSE} is only available over the websocket API: a "
                         "REST request has no connection whose closing could release the "
                         "claim. Renew and delete the claim instead.")
    return True


def _rest_flag(document: Any) -> None:
    if isinstance(document, dict):
        release_on_close(document.get(RELEASE_ON_CLOSE), over_websocket=False)


def _ttl_and_grace(document: Any, limits: Any) -> tuple[int, int]:
    if document is None:
        return limits.default_claim_ttl, limits.default_claim_grace
    document = require_object(document)
    ttl = checked_int(document, "ttl", limits.default_claim_ttl, null_is_default=True)
    grace = checked_int(document, "grace", limits.default_claim_grace, null_is_default=True)
    return ttl, grace


def rest_create(document: Any, limit: int | None, limits: Any) -> tuple[int, int, int]:
    """``(ttl, grace, limit)`` for a claim; ``document`` is None when there was no body."""
    ttl, grace = _ttl_and_grace(document, limits)
    limit = check_create(ttl, grace, limit, limits)
    _rest_flag(document)
    return ttl, grace, limit


def rest_update(document: Any, limits: Any) -> tuple[int, int]:
    """``(ttl, grace)`` for a renewal."""
    ttl, grace = _ttl_and_grace(document, limits)
    check_ttl(ttl, limits)
    _rest_flag(document)
    return ttl, grace
