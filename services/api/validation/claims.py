"""Claim create/renew validation (rest-v2.md §5), in the spec's order:
body types, then ttl range, then limit range, then grace range.

``null`` ttl/grace count as absent (python-zaqarclient sends them; Quirk #6).
Pure; no storage access.
"""

from __future__ import annotations

from typing import Any

from herald.api.validation.body import checked_int, require_object
from herald.common.errors import BadRequest

MIN_CLAIM_TTL = 60
MIN_CLAIM_GRACE = 60
DEFAULT_CLAIM_LIMIT = 10


def _ttl_and_grace(document: Any, limits: Any) -> tuple[int, int]:
    if document is None:
        return limits.default_claim_ttl, limits.default_claim_grace
    document = require_object(document)
    ttl = checked_int(document, "ttl", limits.default_claim_ttl, null_is_default=True)
    grace = checked_int(document, "grace", limits.default_claim_grace, null_is_default=True)
    return ttl, grace


def _check_ttl(ttl: int, limits: Any) -> None:
    maximum = limits.max_claim_ttl
    if not MIN_CLAIM_TTL <= ttl <= maximum:
        raise BadRequest(f"The TTL for a claim may not exceed {maximum} seconds, and must be "
                         f"at least {MIN_CLAIM_TTL} seconds long.")


def validate_create(document: Any, limit: int | None, limits: Any) -> tuple[int, int, int]:
    """``(ttl, grace, limit)`` for a claim; ``document`` is None when there was no body."""
    ttl, grace = _ttl_and_grace(document, limits)
    _check_ttl(ttl, limits)
    maximum = limits.max_messages_per_claim_or_pop
    if limit is not None and not 0 < limit <= maximum:
        raise BadRequest(f"Limit must be at least 1 and may not be greater than {maximum}.")
    max_grace = limits.max_claim_grace
    if not MIN_CLAIM_GRACE <= grace <= max_grace:
        raise BadRequest(f"The grace for a claim may not exceed {max_grace} seconds, and must "
                         f"be at least {MIN_CLAIM_GRACE} seconds long.")
    return ttl, grace, DEFAULT_CLAIM_LIMIT if limit is None else limit


def validate_update(document: Any, limits: Any) -> tuple[int, int]:
    """``(ttl, grace)`` for a renewal: missing values reset to the defaults
    (Quirk #5), only ttl is range-checked."""
    ttl, grace = _ttl_and_grace(document, limits)
    _check_ttl(ttl, limits)
    return ttl, grace
