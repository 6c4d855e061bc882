"""The JSON serializer used for every storage RPC call and reply.

Payloads must be plain JSON values. Message bodies may carry ``bytes`` (msgpack
clients post binary bodies), which JSON cannot: they cross as
``{"__herald_bytes__": "<base64>"}`` and come back as ``bytes``. The embedded
dispatcher uses the same serializer and also round-trips through ``json`` so
that a payload that would not survive RabbitMQ fails in embedded mode too.
"""

from __future__ import annotations

import base64
from typing import Any

import oslo_messaging

from herald.common.context import RequestContext

_BYTES_TAG = "__herald_bytes__"


def encode(value: Any) -> Any:
    """Make ``value`` JSON-safe (bytes become tagged base64 objects)."""
    if isinstance(value, bytes | bytearray):
        return {_BYTES_TAG: base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, dict):
        return {key: encode(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [encode(item) for item in value]
    return value


def decode(value: Any) -> Any:
    """Undo ``encode``."""
    if isinstance(value, dict):
        if len(value) == 1 and _BYTES_TAG in value and isinstance(value[_BYTES_TAG], str):
            return base64.b64decode(value[_BYTES_TAG])
        return {key: decode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decode(item) for item in value]
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
