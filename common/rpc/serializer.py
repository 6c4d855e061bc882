"""The JSON serializer used for every storage RPC call and reply.

Payloads must be plain JSON values. Message bodies may carry ``bytes`` (msgpack
clients post binary bodies), which JSON cannot: they cross as
``{"__herald_bytes__": "<base64>"}`` and come back as ``bytes``. The embedded
dispatcher uses the same serializer and also round-trips through ``json`` so
that a payload that would not survive RabbitMQ fails in embedded mode too.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import oslo_messaging

from herald.common.context import RequestContext

_BYTES_TAG = "__herald_bytes__"


def _bytes_default(value: Any) -> Any:
    """``json.dumps``'s hook for what JSON cannot hold: bytes become tagged base64."""
    if isinstance(value, bytes | bytearray):
        return {_BYTES_TAG: base64.b64encode(bytes(value)).decode("ascii")}
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def canonical_json(value: Any) -> str:
    """``value`` as compact JSON with sorted keys, bytes tagged as ``encode``
    tags them: what the bus signature is computed over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_bytes_default)


def encode(value: Any) -> Any:
    """Make ``value`` JSON-safe (bytes become tagged base64 objects).

    Every RPC payload passes here, and a recursive walk in Python cost a
    storage worker a fifth of its CPU under load. ``json.dumps`` walks in C
    and calls the hook only for bytes, which only binary (msgpack) bodies
    carry: without any, ``value`` is already JSON-safe and returned as is.
    """
    found = False

    def tag(item: Any) -> Any:
        nonlocal found
        found = True
        return _bytes_default(item)

    text = json.dumps(value, default=tag)
    return json.loads(text) if found else value


def decode(value: Any) -> Any:
    """Undo ``encode`` (the walk only when a tag is present at all)."""
    if isinstance(value, dict | list) and _BYTES_TAG not in json.dumps(value):
        return value
    return _decode(value)


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and _BYTES_TAG in value and isinstance(value[_BYTES_TAG], str):
            return base64.b64decode(value[_BYTES_TAG])
        return {key: _decode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_decode(item) for item in value]
    return value


class JsonSerializer(oslo_messaging.Serializer):
    """oslo.messaging serializer for Herald contexts and payloads."""

    def serialize_entity(self, ctxt: Any, entity: Any) -> Any:
        return encode(entity)

    def deserialize_entity(self, ctxt: Any, entity: Any) -> Any:
        return decode(entity)

    def serialize_context(self, ctxt: RequestContext | dict[str, Any]) -> dict[str, Any]:
        if isinstance(ctxt, RequestContext):
            return ctxt.to_dict()
        return dict(ctxt)

    def deserialize_context(self, ctxt: dict[str, Any]) -> RequestContext:
        return RequestContext.from_dict(ctxt)
