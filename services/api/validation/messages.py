"""Message post and delete validation (rest-v2.md §4), in the reference's order.

Produces the message dicts the storage RPC API expects
(``{"body", "ttl": int | None[, "delay": raw]}``). Per-queue rules that need
the queue's metadata (its post size cap, default ttl, delay) are applied by
the storage worker, which has the metadata; nothing here calls storage.
"""

from __future__ import annotations

from typing import Any

from herald.api.validation.body import checked_int
from herald.common.errors import BadRequest, InvalidBody

MIN_MESSAGE_TTL = 60


def check_post_size(content_length: int, limits: Any) -> None:
    """The global cap, checked on the raw length before the body is parsed."""
    maximum = limits.max_messages_post_size
    if content_length > maximum:
        raise BadRequest(f"Message collection size is too large. Max size {maximum}")


def validate_post(document: Any, limits: Any) -> list[dict[str, Any]]:
    """Validate a parsed POST body; return the messages to store, in order."""
    if not isinstance(document, dict) or "messages" not in document:
        raise BadRequest("No messages were found in the request body.")
    raw_messages = document["messages"]
    if not isinstance(raw_messages, list):
        raise InvalidBody("Document type not supported.")
    messages: list[dict[str, Any]] = []
    # Field presence and types first, for every message...
    for raw in raw_messages:
        if not isinstance(raw, dict):
            raise InvalidBody("Document type not supported.")
        if "body" not in raw:
            raise InvalidBody('Missing "body" field.')
        message: dict[str, Any] = {"body": raw["body"], "ttl": None}
        if "ttl" in raw:
            # An explicit null is a type error, as in the reference (only
            # claims treat null as "use the default").
            message["ttl"] = checked_int(raw, "ttl", None)
        if "delay" in raw:
            # Only meaningful on queues with a default delay, where the worker
            # validates it; elsewhere it must be ignored whatever it is.
            message["delay"] = raw["delay"]
        messages.append(message)
    # ...then emptiness...
    if not messages:
        raise BadRequest("No messages to enqueu.")
    # ...then ranges.
    max_ttl = limits.max_message_ttl
    for message in messages:
        ttl = message["ttl"]
        if ttl is not None and not MIN_MESSAGE_TTL <= ttl <= max_ttl:
            raise BadRequest(f"The TTL for a message may not exceed {max_ttl} seconds, and "
                             f"must be at least {MIN_MESSAGE_TTL} seconds long.")
    return messages


def validate_bulk_delete(ids: list[str] | None, pop: int | None, claim_ids: list[str] | None,
                         limits: Any) -> None:
    """``DELETE .../messages?ids=...|pop=N`` parameter rules (reference order)."""
    if ids is None and pop is None:
        raise BadRequest('The request should have either "ids" or "pop" parameter in the '
                         'request, to be able to delete.')
    if limits.message_delete_with_claim_id and (
            (ids and claim_ids is None) or (ids is None and claim_ids)):
        raise BadRequest('The request should have both "ids" and "claim_ids" parameter in '
                         'the request when message_delete_with_claim_id is True.')
    pop_max = limits.max_messages_per_claim_or_pop
    if pop is not None and not 0 < pop <= pop_max:
        raise BadRequest(f"Pop value must be at least 1 and may not be greater than {pop_max}.")
    ids_max = limits.max_messages_per_page
    if ids is not None and not 0 < len(ids) <= ids_max:
        raise BadRequest(f"ids parameter should have at least 1 and not greater than "
                         f"{ids_max} values.")
    if ids and pop:
        raise BadRequest("pop and id params cannot be present together in the delete request.")


def validate_get_many(ids: list[str], limits: Any) -> None:
    ids_max = limits.max_messages_per_page
    if not 0 < len(ids) <= ids_max:
        raise BadRequest(f"ids parameter should have at least 1 and not greater than "
                         f"{ids_max} values.")


def validate_list_limit(limit: int, limits: Any) -> None:
    maximum = limits.max_messages_per_page
    if not 0 < limit <= maximum:
        raise BadRequest(f"Limit must be at least 1 and may not be greater than {maximum}.")
