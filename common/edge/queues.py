"""Queue (and topic) rules: metadata size, reserved-key validation
(semantics.md §9), the defaults shown on GET/PATCH (rest-v2.md §3), the
queue JSON-patch rules (PATCH), and what a purge may remove.

The validation reproduces the reference's messages and its habit of skipping
type checks for falsy values, except where the reference would crash with a
500 (comparing ``""`` or ``[]`` with an int): those are rejected as the wrong
type. REST (PUT, PATCH) and websocket (``queue_create``) apply the same
rules. Pure functions; no storage access.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from herald.common.edge.limits import MIN_DLQ_MESSAGE_TTL, MIN_MESSAGE_DELAY, MIN_MESSAGE_TTL
from herald.common.errors import BadRequest, Conflict, HeraldError, InvalidBody
from herald.common.subscriptions import validate_retry_policy

#: What ``resource_types`` of a purge may name (and what a purge without it removes).
PURGE_TYPES = ("messages", "subscriptions")

PATCH_CONTENT_TYPE = "application/openstack-messaging-v2.0-json-patch"
PATCH_OPS = ("add", "remove", "replace")

# The reserved keys shown with defaults on GET/PATCH, in the order they are shown.
SHOWN_RESERVED_KEYS = (
    "_max_messages_post_size",
    "_default_message_ttl",
    "_default_message_delay",
    "_dead_letter_queue",
    "_dead_letter_queue_messages_ttl",
    "_max_claim_count",
    "_enable_encrypt_messages",
)


def metadata_size(size: int, limits: Any, kind: str = "Queue") -> None:
    """The global metadata cap; each edge measures ``size`` its own way (REST
    the raw body, the websocket the serialized frame value)."""
    maximum = limits.max_queue_metadata
    if size > maximum:
        raise BadRequest(f"{kind} metadata is too large. Max size: {maximum}")


def purge_types(requested: Any) -> list[str]:
    """``resource_types`` of a purge, checked, in PURGE_TYPES order."""
    if (not isinstance(requested, list)
            or not all(isinstance(item, str) and item in PURGE_TYPES for item in requested)):
        raise BadRequest(f"Resource types must be a sub set of {sorted(PURGE_TYPES)}.")
    return [kind for kind in PURGE_TYPES if kind in requested]


def reserved_defaults(limits: Any) -> dict[str, Any]:
    return {
        "_max_messages_post_size": limits.max_messages_post_size,
        "_default_message_ttl": limits.default_message_ttl,
        "_default_message_delay": limits.default_message_delay,
        "_dead_letter_queue": None,
        "_dead_letter_queue_messages_ttl": None,
        "_max_claim_count": None,
        "_enable_encrypt_messages": False,
    }


def with_defaults(metadata: dict[str, Any] | None, limits: Any,
                  shown_keys: tuple[str, ...] = SHOWN_RESERVED_KEYS) -> dict[str, Any]:
    """The metadata as GET shows it: reserved keys (of ``shown_keys``; topics
    show fewer) missing or falsy get defaults."""
    shown = dict(metadata or {})
    for key, default in reserved_defaults(limits).items():
        if key in shown_keys and not shown.get(key):
            shown[key] = default
    return shown


def _is_int(value: Any) -> bool:
    return isinstance(value, int)  # bool included, as in the reference


#: The integer reserved keys, in the order they are checked: the key, its
#: lowest value, the ``[limits]`` option of its highest (None: no range,
#: a type check only) and the reference's range wording.
_INTEGER_KEYS: tuple[tuple[str, int, str | None, str], ...] = (
    ("_default_message_ttl", MIN_MESSAGE_TTL, "max_message_ttl",
     "_default_message_ttl can not exceed {high} seconds, and must be at least {low} "
     "seconds long."),
    ("_max_messages_post_size", 1, "max_messages_post_size",
     "_max_messages_post_size can not exceed {high},  and must be at least greater than 0."),
    ("_max_claim_count", 0, None, ""),
    ("_dead_letter_queue_messages_ttl", MIN_DLQ_MESSAGE_TTL, "max_message_ttl",
     "The TTL for a message may not exceed {high} seconds, and must be at least {low} "
     "seconds long."),
    ("_default_message_delay", MIN_MESSAGE_DELAY, "max_message_delay",
     "The TTL can not exceed {high} seconds, and must be at least {low} seconds long."),
)


def validate_reserved(metadata: dict[str, Any], limits: Any,
                      error: type[HeraldError] = BadRequest) -> None:
    """Raise ``error`` (BadRequest on PUT, InvalidBody on PATCH) for a bad reserved key."""
    if not metadata:
        return
    for key, low, high_option, range_wording in _INTEGER_KEYS:
        value = metadata.get(key)
        if value is None:
            continue
        if high_option is None:
            # ``_max_claim_count``: only a type check (no range), but unlike
            # the reference falsy non-ints are refused too: storage compares
            # the claim counter with this value.
            if not _is_int(value):
                raise error(f"{key} must be integer.")
            continue
        # Truthy non-ints fail the reference's type check; falsy ones (0.0)
        # reach its range check. Falsy non-numbers ("", [], {}) would crash
        # the reference; they are the wrong type, so say so.
        if not _is_int(value) and (value or not isinstance(value, float)):
            raise error(f"{key} must be integer.")
        high = getattr(limits, high_option)
        if not low <= value <= high:
            raise error(range_wording.format(low=low, high=high))
    encrypt = metadata.get("_enable_encrypt_messages")
    if encrypt and not isinstance(encrypt, bool):
        raise error("_enable_encrypt_messages must be boolean.")
    validate_retry_policy(metadata.get("_retry_policy"), error)


# -- JSON patch ---------------------------------------------------------------


def _decode_pointer(pointer: str) -> list[str]:
    if not pointer.startswith("/"):
        raise InvalidBody(f'Pointer `{pointer}` does not start with "/".')
    if re.search(r"/\s*?/", pointer[1:]):
        raise InvalidBody(f'Pointer `{pointer}` contains adjacent "/".')
    if len(pointer) > 1 and pointer.endswith("/"):
        raise InvalidBody(f'Pointer `{pointer}` end with "/".')
    if pointer[1:].strip() == "/":
        raise InvalidBody(f"Pointer `{pointer}` does not contains valid token.")
    if re.search(r"~[^01]", pointer) or pointer.endswith("~"):
        raise InvalidBody(
            f'Pointer `{pointer}` contains "~" not part of a recognized escape sequence.')
    return [part.replace("~1", "/").replace("~0", "~").strip()
            for part in pointer.lstrip("/").split("/")]


def _bad_pointer(parts: list[str]) -> InvalidBody:
    return InvalidBody(
        f"Invalid JSON pointer for this resource: '/{'/'.join(parts)}, e.g /metadata/key'")


def validate_patch(document: Any) -> list[dict[str, Any]]:
    """Check a parsed PATCH body; return ``[{"op", "key"[, "value"]}]`` in order."""
    if not isinstance(document, list):
        # The reference answers 503 here (Quirk #9); a 400 is what it means.
        raise InvalidBody("Document type not supported.")
    if not document:
        raise InvalidBody("PATCH body could not be empty for update.")
    changes = []
    for operation in document:
        if not isinstance(operation, dict):
            raise InvalidBody("Operations must be JSON objects.")
        op = operation.get("op")
        if op is None:
            raise InvalidBody("Unable to find `op` in JSON Schema change. It must be one "
                              f"of the following: {', '.join(PATCH_OPS)}.")
        if op not in PATCH_OPS:
            raise InvalidBody(f"Invalid operation: `{op}`. It must be one of the "
                              f"following: {', '.join(PATCH_OPS)}.")
        if "path" not in operation:
            raise InvalidBody("Unable to find 'path' in JSON Schema change")
        pointer = operation["path"]
        if not isinstance(pointer, str):
            raise InvalidBody("Expected \"path\" to be a string.")
        parts = _decode_pointer(pointer)
        if len(parts) != 2:
            raise _bad_pointer(parts)
        if op in ("add", "replace"):
            if parts[0].lower() != "metadata":
                raise _bad_pointer(parts)
            if "value" not in operation:
                raise InvalidBody(f'Operation "{op}" requires a member named "value".')
        change = {"op": op, "key": parts[1]}
        if "value" in operation:
            change["value"] = operation["value"]
        changes.append(change)
    return changes


def apply_patch(stored: dict[str, Any], changes: list[dict[str, Any]],
                reserved_keys: tuple[str, ...] = SHOWN_RESERVED_KEYS) -> dict[str, Any]:
    """Apply validated ``changes`` to a copy of the stored metadata (409 on conflicts).

    ``reserved_keys`` may be replaced or removed without being stored (topics
    reserve fewer keys than queues)."""
    metadata = copy.deepcopy(stored)
    reserved = set(reserved_keys)
    for change in changes:
        key = change["key"]
        if change["op"] == "add":
            metadata[key] = change["value"]
        elif change["op"] == "replace":
            if key not in metadata and key not in reserved:
                raise Conflict(f"Can't replace non-existent object {key}.")
            metadata[key] = change["value"]
        else:  # remove
            if key in metadata:
                del metadata[key]
            elif key not in reserved:
                raise Conflict(f"Can't remove non-existent object {key}.")
    return metadata
