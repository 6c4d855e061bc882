"""Message rules (rest-v2.md §4, websocket.md §5 "Messages"), in the reference's order.

A post is checked in three steps that both edges share: the global size cap
(each edge measures its own form: REST the raw body, the websocket the
serialized ``messages``), each element's fields and types
(``clean_messages``), then emptiness and ttl ranges (``check_messages``).
The websocket checks Client-ID between the last two steps, as the reference
does, hence the split. The websocket words a field refusal with the
reference's ``Bad request.`` prefix (``websocket_clean_messages``).

Per-queue rules that need the queue's metadata (its post size cap, default
ttl, delay) are applied by the storage worker, which has the metadata;
nothing here calls storage.
"""

from __future__ import annotations

from typing import Any

from herald.common.edge.bodies import checked_int, require_object
from herald.common.edge.limits import MIN_MESSAGE_DELAY, MIN_MESSAGE_TTL
from herald.common.errors import BadRequest, InvalidBody

NO_MESSAGES = "No messages to enqueu."  # sic: the reference's spelling

#: The longest message group name (the column is as wide).
MAX_GROUP_LENGTH = 128


def post_size(size: int, limits: Any) -> None:
    """The global cap; the per-queue ``_max_messages_post_size`` is the worker's."""
    maximum = limits.max_messages_post_size
    if size > maximum:
        raise BadRequest(f"Message collection size is too large. Max size {maximum}")


def clean_messages(raw_messages: list[Any], fixed_delay: int | None = None,
                   ) -> list[dict[str, Any]]:
    """Field presence and types of every element, in order:
    ``[{"body", "ttl": int | None[, "group"][, "delay"]}]`` as storage expects; the
    delay is the client's, or ``fixed_delay`` for every message when given."""
    messages: list[dict[str, Any]] = []
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
        if "group" in raw:
            message["group"] = group_of(raw["group"])
        if fixed_delay is not None:
            message["delay"] = fixed_delay
        elif "delay" in raw:
            # Only meaningful on queues with a default delay, where the worker
            # validates it; elsewhere it must be ignored whatever it is.
            message["delay"] = raw["delay"]
        messages.append(message)
    return messages


def group_of(value: Any) -> str:
    """A message's ``group`` (docs/message-groups.md): a string of 1 to
    ``MAX_GROUP_LENGTH`` characters, without control characters."""
    if not isinstance(value, str):
        raise InvalidBody('The value of the "group" field must be a string.')
    if not 1 <= len(value) <= MAX_GROUP_LENGTH or not value.isprintable():
        raise BadRequest(f'The "group" of a message must be 1 to {MAX_GROUP_LENGTH} '
                         "printable characters long.")
    return value


def websocket_clean_messages(raw_messages: list[Any]) -> list[dict[str, Any]]:
    """``clean_messages`` with the websocket's wording, and without ``delay``:
    it is never honoured over the websocket (spec quirk), not even the
    queue's default, so an explicit 0 says "visible at once"."""
    try:
        return clean_messages(raw_messages, fixed_delay=0)
    except InvalidBody as exc:
        raise BadRequest(f"Bad request. {exc.description}") from exc


def check_messages(messages: list[dict[str, Any]], limits: Any) -> None:
    """Emptiness, then every ttl's range."""
    if not messages:
        raise BadRequest(NO_MESSAGES)
    maximum = limits.max_message_ttl
    for message in messages:
        ttl = message["ttl"]
        if ttl is not None and not MIN_MESSAGE_TTL <= ttl <= maximum:
            raise BadRequest(f"The TTL for a message may not exceed {maximum} seconds, and "
                             f"must be at least {MIN_MESSAGE_TTL} seconds long.")


def rest_post(document: Any, limits: Any) -> list[dict[str, Any]]:
    """A parsed REST post body ``{"messages": [...]}``: the messages to store."""
    if not isinstance(document, dict) or "messages" not in document:
        raise BadRequest("No messages were found in the request body.")
    raw_messages = document["messages"]
    if not isinstance(raw_messages, list):
        raise InvalidBody("Document type not supported.")
    messages = clean_messages(raw_messages)
    check_messages(messages, limits)
    return messages


def release_delay(document: Any, limits: Any) -> int:
    """The ``delay`` of a release (Herald extension, docs/release.md): the
    parsed REST body or the websocket's ``body``; no body or no ``delay`` is
    0 (claimable at once); else an integer within the message delay range."""
    if document is None:
        return 0
    if isinstance(document, dict) and isinstance(document.get("delay"), bool):
        raise InvalidBody('The value of the "delay" field must be a int.')
    delay = checked_int(require_object(document), "delay", 0, null_is_default=True)
    maximum = limits.max_message_delay
    if not MIN_MESSAGE_DELAY <= delay <= maximum:
        raise BadRequest(f"The delay of a released message may not exceed {maximum} seconds, "
                         f"and must be at least {MIN_MESSAGE_DELAY} seconds long.")
    return delay


def release_claim_id(claim_id: Any) -> str:
    """The claim a release names (``?claim_id=`` / ``claim_id``): required."""
    if not isinstance(claim_id, str) or not claim_id:
        raise BadRequest("A release needs the claim_id of the claim holding the message.")
    return claim_id


def bulk_delete(ids: list[Any] | None, pop: int | None, claim_ids: list[Any] | None,
                limits: Any) -> None:
    """Bulk delete / pop parameters, in the reference's order (both edges):
    ids with pop, neither, claim_ids (when required), pop range, ids count."""
    if ids and pop:
        raise BadRequest("pop and id params cannot be present together in the delete request.")
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
    ids_count(ids, limits)


def ids_count(ids: list[Any] | None, limits: Any) -> None:
    """How many ids a REST get-many or a bulk delete may name. (The
    websocket's ``message_get_many`` bounds them as a page: ``limits.message_page``.)"""
    ids_max = limits.max_messages_per_page
    if ids is not None and not 0 < len(ids) <= ids_max:
        raise BadRequest(f"ids parameter should have at least 1 and not greater than "
                         f"{ids_max} values.")
