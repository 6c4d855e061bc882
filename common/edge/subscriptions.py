"""Subscription request bodies (rest-v2.md §6, websocket.md §5 "Subscriptions").

The rules for one field (subscriber URI, options and retry policy, ttl)
are ``herald.common.subscriptions``, which storage shares; this module says
which fields a request carries and in which order they are checked:
subscriber, options (with the filter policy of ``options.filter``,
``herald.common.filter_policy``, bounded by the ``[limits]`` options), ttl.
One difference is the spec's: a REST create
treats a ttl of 0 as "use the default", while a REST update and a websocket
create refuse it (``zero_ttl_is_default``). A websocket create without a
subscriber subscribes the connection itself, which its handler decides.
Pure; no storage access.
"""

from __future__ import annotations

from typing import Any

from herald.common import filter_policy
from herald.common import subscriptions as rules
from herald.common.edge.bodies import DOC_TYPE
from herald.common.errors import BadRequest, InvalidBody

MISSING_SUBSCRIBER = "Missing parameter subscriber in body."


def check_ttl(ttl: Any, *, zero_ttl_is_default: bool) -> None:
    if not zero_ttl_is_default and (isinstance(ttl, bool) or not isinstance(ttl, int)):
        raise BadRequest("TTL must be an integer.")
    rules.validate_ttl(ttl)
    if not zero_ttl_is_default and ttl < rules.MIN_SUBSCRIPTION_TTL:
        raise BadRequest("The TTL for a subscription must be at least "
                         f"{rules.MIN_SUBSCRIPTION_TTL} seconds long.")


def check_options(options: Any, limits: Any) -> None:
    """Options: their type, retry policy and filter policy."""
    rules.validate_options(options)
    filter_policy.validate_options(options, limits)


def check_fields(subscriber: Any, options: Any, ttl: Any, subscriber_types: list[str],
                 limits: Any, *, zero_ttl_is_default: bool) -> None:
    """A new subscription's fields; ``subscriber`` None means the caller
    has already decided who subscribes (the websocket's connection)."""
    if subscriber is not None:
        rules.validate_subscriber(subscriber, subscriber_types)
    check_options(options, limits)
    check_ttl(ttl, zero_ttl_is_default=zero_ttl_is_default)


def rest_create(document: Any, subscriber_types: list[str],
                limits: Any) -> tuple[str, Any, Any]:
    """``(subscriber, options, ttl)`` of a parsed REST create body."""
    if not isinstance(document, dict):
        raise InvalidBody(DOC_TYPE)
    subscriber = document.get("subscriber")
    if subscriber is None:
        raise BadRequest(MISSING_SUBSCRIBER)
    options, ttl = document.get("options"), document.get("ttl")
    check_fields(subscriber, options, ttl, subscriber_types, limits, zero_ttl_is_default=True)
    return subscriber, options, ttl


def rest_update(document: Any, subscriber_types: list[str], limits: Any) -> dict[str, Any]:
    """The changes of a parsed REST PATCH body (None when there was none)."""
    if not document and not isinstance(document, list):
        raise BadRequest("No subscription to create.")
    if not isinstance(document, dict):
        raise BadRequest("Subscriptions must be a dict.")
    changes: dict[str, Any] = {}
    if "subscriber" in document:
        rules.validate_subscriber(document["subscriber"], subscriber_types)
        changes["subscriber"] = document["subscriber"]
    if "options" in document:
        check_options(document["options"], limits)
        changes["options"] = document["options"] or {}
    if "ttl" in document:
        check_ttl(document["ttl"], zero_ttl_is_default=False)
        changes["ttl"] = document["ttl"]
    return changes


def confirmed(document: Any) -> bool:
    """The ``confirmed`` flag of a parsed confirmation body."""
    value = document.get("confirmed") if isinstance(document, dict) else None
    if not isinstance(value, bool):
        raise BadRequest("The 'confirmed' should be boolean.")
    return value
