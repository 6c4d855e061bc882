"""Validation rules shared by the REST API and the WebSocket gateway.

The two edges check the same things (queue names, Client-ID, limits, ttls,
reserved queue metadata) with the reference's exact wording, which clients
and tests match on. Each check raises ``herald.common.errors.BadRequest``
with that wording as its description; the edge decides how to render it
(REST ``title``/``description``, websocket ``exception``/``error``).

This module holds pure functions of their arguments and the ``[limits]``
options: no I/O, no storage calls, nothing specific to one edge's wire
format.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from oslo_config import cfg

from herald.common.errors import BadRequest

QUEUE_NAME_MAX = 64
PROJECT_ID_MAX = 256
MIN_MESSAGE_TTL = 60
MIN_CLAIM_TTL = 60
MIN_CLAIM_GRACE = 60
MIN_DLQ_MESSAGE_TTL = 60

_QUEUE_NAME_RE = re.compile(r"^[a-zA-Z0-9_.-]+$")


def _is_int(value: Any) -> bool:
    # The reference uses isinstance(value, int), so true/false count as ints.
    return isinstance(value, int)


def queue_identification(queue: str, project: str | None) -> None:
    """The reference's queue name and project id check (websocket wording)."""
    if project is not None and len(project) > PROJECT_ID_MAX:
        raise BadRequest(f"Project ids may not be more than {PROJECT_ID_MAX} characters long.")
    if len(queue) > QUEUE_NAME_MAX:
        raise BadRequest(f"Queue names may not be more than {QUEUE_NAME_MAX} characters long.")
    if not _QUEUE_NAME_RE.match(queue):
        raise BadRequest(
            "Queue names may only contain ASCII letters, digits, underscores, and dashes."
        )


def client_id(value: str, limits: cfg.ConfigOpts) -> None:
    """Client-ID check of ``[limits] client_id_uuid_safe``."""
    if limits.client_id_uuid_safe == "off":
        if not (limits.min_length_client_id <= len(value) <= limits.max_length_client_id):
            raise BadRequest(
                f"Length of client id must be at least {limits.min_length_client_id} "
                f"and no greater than {limits.max_length_client_id}."
            )
        return
    try:
        uuid.UUID(value)
    except (ValueError, TypeError, AttributeError) as exc:
        raise BadRequest("Malformed hexadecimal UUID.") from exc


def queue_listing_limit(limit: int | None, limits: cfg.ConfigOpts) -> None:
    top = limits.max_queues_per_page
    if limit is not None and not 0 < limit <= top:
        raise BadRequest(f"Limit must be at least 1 and no greater than {top}.")


def message_listing_limit(limit: int | None, limits: cfg.ConfigOpts) -> None:
    top = limits.max_messages_per_page
    if limit is not None and not 0 < limit <= top:
        raise BadRequest(f"Limit must be at least 1 and may not be greater than {top}.")


def message_ttl(ttl: int, limits: cfg.ConfigOpts) -> None:
    top = limits.max_message_ttl
    if not MIN_MESSAGE_TTL <= ttl <= top:
        raise BadRequest(
            f"The TTL for a message may not exceed {top} seconds, and must be at "
            f"least {MIN_MESSAGE_TTL} seconds long."
        )


def messages_post_size(size: int, limits: cfg.ConfigOpts) -> None:
    """Global cap; the per-queue ``_max_messages_post_size`` is the worker's."""
    top = limits.max_messages_post_size
    if size > top:
        raise BadRequest(f"Message collection size is too large. Max size {top}")


def claim_creation(ttl: int, grace: int, limit: int | None, limits: cfg.ConfigOpts) -> None:
    """Order as the reference: ttl, then limit, then grace."""
    claim_ttl(ttl, limits)
    top = limits.max_messages_per_claim_or_pop
    if limit is not None and not 0 < limit <= top:
        raise BadRequest(f"Limit must be at least 1 and may not be greater than {top}.")
    grace_top = limits.max_claim_grace
    if not MIN_CLAIM_GRACE <= grace <= grace_top:
        raise BadRequest(
            f"The grace for a claim may not exceed {grace_top} seconds, and must be at "
            f"least {MIN_CLAIM_GRACE} seconds long."
        )


def claim_ttl(ttl: int, limits: cfg.ConfigOpts) -> None:
    top = limits.max_claim_ttl
    if not MIN_CLAIM_TTL <= ttl <= top:
        raise BadRequest(
            f"The TTL for a claim may not exceed {top} seconds, and must be at "
            f"least {MIN_CLAIM_TTL} seconds long."
        )


def message_deletion(ids: list[str] | None, pop: int | None, claim_ids: list[str] | None,
                     limits: cfg.ConfigOpts) -> None:
    """Bulk delete / pop parameters (checks in the reference's order)."""
    if ids and pop:
        raise BadRequest("pop and id params cannot be present together in the delete request.")
    if not ids and not pop:
        raise BadRequest(
            'The request should have either "ids" or "pop" parameter in the request, '
            "to be able to delete."
        )
    if limits.message_delete_with_claim_id and (
        (ids and claim_ids is None) or (ids is None and claim_ids)
    ):
        raise BadRequest(
            'The request should have both "ids" and "claim_ids" parameter in the '
            "request when message_delete_with_claim_id is True."
        )
    pop_top = limits.max_messages_per_claim_or_pop
    if pop is not None and not 0 < pop <= pop_top:
        raise BadRequest(f"Pop value must be at least 1 and may not be greater than {pop_top}.")
    ids_top = limits.max_messages_per_page
    if ids is not None and not 0 < len(ids) <= ids_top:
        raise BadRequest(
            f"ids parameter should have at least 1 and not greater than {ids_top} values."
        )


def queue_metadata(metadata: dict[str, Any], limits: cfg.ConfigOpts) -> None:
    """Reserved-key checks of semantics.md §9, reference wording and quirks.

    As in the reference, type checks skip falsy values (0, "", false) and
    ``true`` counts as an integer; range checks (on integers only, so a falsy
    string cannot crash them) then catch an out-of-range 0.
    """
    ttl = metadata.get("_default_message_ttl")
    if ttl and not _is_int(ttl):
        raise BadRequest("_default_message_ttl must be integer.")
    if _is_int(ttl) and not MIN_MESSAGE_TTL <= ttl <= limits.max_message_ttl:
        raise BadRequest(
            f"_default_message_ttl can not exceed {limits.max_message_ttl} seconds, and "
            f"must be at least {MIN_MESSAGE_TTL} seconds long."
        )

    size = metadata.get("_max_messages_post_size")
    if size and not _is_int(size):
        raise BadRequest("_max_messages_post_size must be integer.")
    if _is_int(size) and not 0 < size <= limits.max_messages_post_size:
        raise BadRequest(
            f"_max_messages_post_size can not exceed {limits.max_messages_post_size}, "
            " and must be at least greater than 0."
        )

    max_claim_count = metadata.get("_max_claim_count")
    if max_claim_count and not _is_int(max_claim_count):
        raise BadRequest("_max_claim_count must be integer.")

    dlq_ttl = metadata.get("_dead_letter_queue_messages_ttl")
    if dlq_ttl and not _is_int(dlq_ttl):
        raise BadRequest("_dead_letter_queue_messages_ttl must be integer.")
    if _is_int(dlq_ttl) and not MIN_DLQ_MESSAGE_TTL <= dlq_ttl <= limits.max_message_ttl:
        raise BadRequest(
            f"The TTL for a message may not exceed {limits.max_message_ttl} seconds, "
            f"and must be at least {MIN_DLQ_MESSAGE_TTL} seconds long."
        )

    delay = metadata.get("_default_message_delay")
    if delay and not _is_int(delay):
        raise BadRequest("_default_message_delay must be integer.")
    if _is_int(delay) and not 0 <= delay <= limits.max_message_delay:
        raise BadRequest(
            f"The TTL can not exceed {limits.max_message_delay} seconds, and must be "
            "at least 0 seconds long."
        )

    encrypt = metadata.get("_enable_encrypt_messages")
    if encrypt and not isinstance(encrypt, bool):
        raise BadRequest("_enable_encrypt_messages must be boolean.")


IDEMPOTENCY_KEY_MAX = 255


def idempotency_key_ok(key: Any) -> bool:
    """An idempotency key (Herald extension): 1..255 printable ASCII characters,
    since it travels in an HTTP header and is stored as a database key."""
    return (isinstance(key, str) and 0 < len(key) <= IDEMPOTENCY_KEY_MAX and key.isascii()
            and key.isprintable())
