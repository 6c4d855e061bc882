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

import orjson
import oslo_messaging

from herald.common.context import RequestContext

_BYTES_TAG = "__herald_bytes__"
_BYTES_TAG_UTF8 = _BYTES_TAG.encode()


def _bytes_default(value: Any) -> Any:
    """``json.dumps``'s hook for what JSON cannot hold: bytes become tagged base64."""
    if isinstance(value, bytes | bytearray):
        return {_BYTES_TAG: base64.b64encode(bytes(value)).decode("ascii")}
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> str:
    """``value`` as JSON text, bytes tagged as ``encode`` tags them: one pass,
    the text ``json.dumps(encode(value))`` gives."""
    return json.dumps(value, default=_bytes_default)


def canonical_json(value: Any) -> str:
    """``value`` as compact JSON with sorted keys, bytes tagged as ``encode``
    tags them: what version 1 of the bus signature is computed over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_bytes_default)


# Passthrough: datetimes and dataclasses go to the hook, which refuses them
# as json does, instead of being written in orjson's own way.
_CANONICAL_OPTIONS = (orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
                      | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS)


def canonical_bytes(value: Any) -> bytes:
    """What version 2 of the bus signature is computed over: ``value`` as
    orjson's compact UTF-8 JSON with sorted keys, bytes tagged as ``encode``
    tags them.

    The sender hashes what it sends and the receiver what it decoded; the
    two texts must be equal. orjson writes a value and its JSON round trip
    the same way (non-string keys as strings, as ``json`` sends them; a
    float by its shortest repr; NaN as null on both sides). What orjson
    refuses it refuses on both sides (integers beyond 64 bits, nesting
    beyond 254 levels), and both then hash version 1's text, which raises
    ``TypeError`` for what is not JSON at all (a datetime, say).
    """
    try:
        return orjson.dumps(value, default=_bytes_default, option=_CANONICAL_OPTIONS)
    except orjson.JSONEncodeError:
        return canonical_json(value).encode()


def encode(value: Any) -> Any:
    """Make ``value`` JSON-safe (bytes become tagged base64 objects).

    Every RPC payload passes here, and a recursive walk in Python cost a
    storage worker a fifth of its CPU under load. Only binary (msgpack)
    bodies carry bytes: ``_has_bytes`` looks for them in one pass in native
    code, and without any ``value`` is already JSON-safe and returned as is.
    """
    if not _has_bytes(value):
        return value
    return json.loads(dumps(value))


def decode(value: Any) -> Any:
    """Undo ``encode`` (the walk only when a tag is present at all)."""
    if isinstance(value, dict | list) and not _mentions_tag(value):
        return value
    return _decode(value)


def _has_bytes(value: Any) -> bool:
    found = False

    def tag(item: Any) -> Any:
        nonlocal found
        found = True
        return _bytes_default(item)

    try:
        # orjson: the same walk ~25x faster than json on a batch of 1 KiB
        # bodies (docs/performance-history.md, fifth round). It only looks here; the text is
        # thrown away, so where its output differs from json's (non-ASCII,
        # NaN) nothing depends on it.
        orjson.dumps(value, default=tag)
    except orjson.JSONEncodeError:  # also what the hook refused (a TypeError)
        # What orjson refuses and json takes: integers beyond 64 bits,
        # non-string keys, nesting deeper than 254 levels.
        found = False
        json.dumps(value, default=tag)
    return found


def _mentions_tag(value: Any) -> bool:
    try:
        return _BYTES_TAG_UTF8 in orjson.dumps(value)
    except orjson.JSONEncodeError:  # see _has_bytes
        return _BYTES_TAG in json.dumps(value)


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
