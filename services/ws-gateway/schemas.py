"""The websocket request schemas: the 34 actions the reference's schema knows,
and Herald's own (``message_release``).

``validate(payload)`` is the first check every decoded request goes through
(websocket.md §2): unknown action -> ``InvalidAction``; schema violation ->
``SchemaValidationFailed``. It runs on the raw payload, before ``body`` and
``headers`` are defaulted, and before authentication.

Schemas are JSON Schema Draft 4 (as the reference's): extra properties are
allowed everywhere; ``integer`` excludes floats and booleans. This module
only describes request shapes; it does not know what an action does.

Every request is checked by ``jsonschema_rs`` first (compiled, ~100x
faster than ``jsonschema``: the pure-Python check was a seventh of the
gateway's CPU during websocket posts). Only what it does not accept -- an
invalid payload, or one holding what it cannot read, such as a msgpack
frame's bytes or integer keys -- goes to ``jsonschema``, which has the last
word: the answers are ``jsonschema``'s, at the compiled check's cost on the
valid requests that are the traffic.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import jsonschema_rs

_HEADERS = {
    name: {"type": "string"}
    for name in ("User-Agent", "Date", "Accept", "Client-ID", "X-Project-ID", "X-Auth-Token")
}
_CLIENT_HEADERS = ["Client-ID", "X-Project-ID"]

_STR = {"type": "string"}
_INT = {"type": "integer"}
_BOOL = {"type": "boolean"}
_OBJ = {"type": "object"}
_ARRAY = {"type": "array"}


def _schema(action: str, body: dict[str, Any] | None = None,
            required_body: list[str] | None = None, body_required: bool = True,
            required_headers: list[str] | None = None) -> dict[str, Any]:
    headers: dict[str, Any] = {"type": "object", "properties": _HEADERS}
    required = ["action"]
    if required_headers:
        headers["required"] = required_headers
        required.append("headers")
    properties: dict[str, Any] = {"action": {"enum": [action]}, "headers": headers}
    if body is not None:
        body_schema: dict[str, Any] = {"type": "object", "properties": body}
        if required_body:
            body_schema["required"] = required_body
        properties["body"] = body_schema
        if body_required:
            required.append("body")
    return {"type": "object", "properties": properties, "required": required}


def _client(action: str, body: dict[str, Any], required_body: list[str] | None = None,
            body_required: bool = True) -> dict[str, Any]:
    return _schema(action, body, required_body, body_required, _CLIENT_HEADERS)


_Q = {"queue_name": _STR}

SCHEMAS: dict[str, dict[str, Any]] = {
    # Base
    "get_home_doc": _schema("get_home_doc"),
    "check_node_health": _schema("check_node_health"),
    "ping_node": _schema("ping_node"),
    "authenticate": _schema("authenticate", required_headers=["X-Project-ID", "X-Auth-Token"]),
    # Queues
    "queue_list": _client("queue_list", {"marker": _STR, "limit": _INT, "detailed": _BOOL},
                          body_required=False),
    "queue_create": _client("queue_create", {**_Q, "metadata": _OBJ}, ["queue_name"]),
    "queue_delete": _client("queue_delete", _Q, ["queue_name"]),
    "queue_get": _client("queue_get", _Q, ["queue_name"]),
    "queue_get_stats": _client("queue_get_stats", _Q, ["queue_name"]),
    "queue_purge": _client("queue_purge", {**_Q, "resource_types": _ARRAY}, ["queue_name"]),
    # Messages
    "message_list": _client(
        "message_list",
        {**_Q, "marker": _STR, "limit": _INT, "echo": _BOOL, "include_claimed": _BOOL,
         "include_delayed": _BOOL, "wait": _INT},  # wait: Herald's long poll
        ["queue_name"],
    ),
    "message_get": _client("message_get", {**_Q, "message_id": _STR},
                           ["queue_name", "message_id"]),
    "message_get_many": _client("message_get_many", {**_Q, "message_ids": _ARRAY},
                                ["queue_name", "message_ids"]),
    # idempotency_key: Herald's idempotent posts (docs/api-extensions.md).
    "message_post": _client("message_post", {**_Q, "messages": _ARRAY,
                                             "idempotency_key": _STR},
                            ["queue_name", "messages"]),
    "message_delete": _client("message_delete",
                              {**_Q, "message_id": _STR, "claim_id": _STR},
                              ["queue_name", "message_id"]),
    "message_delete_many": _client(
        "message_delete_many",
        {**_Q, "message_ids": _ARRAY, "claim_ids": _ARRAY, "pop": _INT},
        ["queue_name"],
    ),
    # Herald extension: release one claimed message (docs/release.md).
    "message_release": _client("message_release",
                               {**_Q, "message_id": _STR, "claim_id": _STR, "delay": _INT},
                               ["queue_name", "message_id", "claim_id"]),
    # Claims
    # wait: Herald's long poll; release_on_close: Herald's claims released
    # with their connection (docs/api-extensions.md).
    "claim_create": _client("claim_create", {**_Q, "limit": _INT, "ttl": _INT, "grace": _INT,
                                             "wait": _INT, "release_on_close": _BOOL},
                            ["queue_name"]),
    "claim_get": _client("claim_get", {**_Q, "claim_id": _STR}, ["queue_name", "claim_id"]),
    "claim_update": _client("claim_update",
                            {**_Q, "claim_id": _STR, "ttl": _INT, "grace": _INT,
                             "release_on_close": _BOOL},
                            ["queue_name", "claim_id"]),
    "claim_delete": _client("claim_delete", {**_Q, "claim_id": _STR},
                            ["queue_name", "claim_id"]),
    # Dead-letter redrive: Herald's (docs/dead-letter-redrive.md).
    "queue_redrive": _client("queue_redrive", {**_Q, "destination": _STR, "max_per_second": _INT,
                                               "limit": _INT}, ["queue_name"]),
    "queue_redrive_get": _client("queue_redrive_get", {**_Q, "redrive_id": _STR},
                                 ["queue_name", "redrive_id"]),
    # Pools (no handler: answered "not a valid action" after validation)
    "pool_list": _client("pool_list", {"pool_name": _STR, "detailed": _BOOL, "limit": _INT,
                                       "marker": _STR}, ["pool_name"]),
    "pool_create": _client("pool_create", {"pool_name": _STR, "weight": _INT, "uri": _STR,
                                           "options": _OBJ}, ["pool_name"]),
    "pool_update": _client("pool_update", {"pool_name": _STR, "weight": _INT, "uri": _STR,
                                           "options": _OBJ}, ["pool_name"]),
    "pool_get": _client("pool_get", {"pool_name": _STR, "detailed": _BOOL}, ["pool_name"]),
    "pool_delete": _client("pool_delete", {"pool_name": _STR}, ["pool_name"]),
    # Flavors (no handler)
    "flavor_list": _client("flavor_list", {"flavor_name": _STR, "detailed": _BOOL,
                                           "limit": _INT, "marker": _STR}, ["flavor_name"]),
    "flavor_create": _client("flavor_create", {"flavor_name": _STR, "pool_name": _STR,
                                               "capabilities": _OBJ},
                             ["flavor_name", "pool_name"]),
    "flavor_update": _client("flavor_update", {"flavor_name": _STR, "pool_name": _STR,
                                               "capabilities": _OBJ}, ["flavor_name"]),
    "flavor_get": _client("flavor_get", {"flavor_name": _STR, "detailed": _BOOL},
                          ["flavor_name"]),
    "flavor_delete": _client("flavor_delete", {"flavor_name": _STR}, ["flavor_name"]),
    # Subscriptions
    "subscription_list": _client("subscription_list",
                                 {**_Q, "marker": _STR, "limit": _INT}, ["queue_name"]),
    "subscription_create": _client("subscription_create",
                                   {**_Q, "subscriber": _STR, "ttl": _INT, "options": _OBJ},
                                   ["queue_name"]),
    "subscription_delete": _client("subscription_delete", {**_Q, "subscription_id": _STR},
                                   ["queue_name", "subscription_id"]),
    "subscription_get": _client("subscription_get", {**_Q, "subscription_id": _STR},
                                ["queue_name", "subscription_id"]),
}

_VALIDATORS = {name: jsonschema.Draft4Validator(schema) for name, schema in SCHEMAS.items()}
_FAST_VALIDATORS = {name: jsonschema_rs.Draft4Validator(schema)
                    for name, schema in SCHEMAS.items()}


def is_valid(action: str, payload: dict[str, Any]) -> bool:
    """Whether ``payload`` matches the schema of ``action`` (a known action)."""
    try:
        if _FAST_VALIDATORS[action].is_valid(payload):
            return True
    except ValueError:  # a value it cannot read (bytes, non-string keys)
        pass
    return _VALIDATORS[action].is_valid(payload)


class InvalidAction(Exception):
    """The action is not one the schema knows; ``str()`` is the client text."""


class SchemaValidationFailed(Exception):
    """The payload does not match its action's schema."""


def validate(payload: dict[str, Any]) -> str:
    """Check ``payload`` against its action's schema; return the action name."""
    action = payload.get("action")
    if not isinstance(action, str) or action not in _VALIDATORS:
        raise InvalidAction(f"{action} is not a valid action")
    if not is_valid(action, payload):
        raise SchemaValidationFailed("Schema validation failed.")
    return action
