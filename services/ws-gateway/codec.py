"""Frame codec: websocket frames <-> Python values, JSON text or msgpack binary.

A text frame carries JSON, a binary frame carries MessagePack (str keys,
``raw=False``); a reply is encoded in the kind of its request. Decoding
failures raise ``DecodeError`` whose text is the reference's error wording.

This module knows nothing of actions, envelopes or connections.

Bytes: only msgpack can carry them. A binary message body posted over msgpack
comes back as msgpack ``bin``, byte-identical. When such a body has to go
out in a JSON frame (a JSON client lists a message a msgpack client posted),
it is sent as the base64 text of the bytes: JSON has no bytes type, and
failing the whole reply would hide the other messages from that client.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import msgpack

# The REST API's bounds too (herald.common.edge.limits): the RPC serializer,
# the storage and msgpack's encoder (512 levels) all recurse, so a deeper
# document would decode here and fail later as a 500.
from herald.common.edge.limits import INT64_MAX as _INT64_MAX
from herald.common.edge.limits import INT64_MIN as _INT64_MIN
from herald.common.edge.limits import MAX_DEPTH
from herald.common.strict_json import loads_if_plain


class DecodeError(Exception):
    """The frame could not be decoded; ``str()`` is the client-facing text."""


def _parse_int(text: str) -> int:
    # JSON integers are limited to the signed 64-bit range on input (semantics
    # §1); msgpack cannot even express larger ones.
    value = int(text)
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError("JSON contains integer that is too large.")
    return value


def _parse_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; PostgreSQL's jsonb and every strict
    # client reject them, so they must not get into a stored message.
    raise ValueError(f"JSON contains {name}, which is not a number.")


def _check_document(document: Any) -> None:
    """Depth and non-finite floats (msgpack can carry NaN too); iterative."""
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"document contains {value}, which is not a number.")
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise ValueError(f"document is nested deeper than {MAX_DEPTH} levels.")
            items = value.values() if isinstance(value, dict) else value
            stack.extend((item, depth + 1) for item in items)


def decode(frame: str | bytes) -> Any:
    """Decode one frame: ``str`` is JSON text, ``bytes`` is msgpack."""
    if isinstance(frame, str):
        document = loads_if_plain(frame, MAX_DEPTH)
        if document is not None:
            return document
        try:
            document = json.loads(frame, parse_int=_parse_int, parse_constant=_parse_constant)
            _check_document(document)
            return document
        except (ValueError, RecursionError) as exc:
            raise DecodeError(
                f"Can't decode text (JSON) request. {type(exc).__name__}: {exc}"
            ) from exc
    try:
        document = msgpack.unpackb(frame, raw=False)
        _check_document(document)
        return document
    except Exception as exc:  # msgpack raises several unrelated exception types
        raise DecodeError(
            f"Can't decode binary (MessagePack) request. {type(exc).__name__}: {exc}"
        ) from exc


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def encode(value: Any, binary: bool) -> str | bytes:
    """Encode a reply for a binary (msgpack) or text (JSON) frame."""
    if binary:
        return msgpack.packb(value, use_bin_type=True)
    return json.dumps(value, default=_json_default, separators=(",", ":"))


def serialized_size(value: Any, binary: bool) -> int:
    """Length of ``value`` serialized as its request was: msgpack or JSON.

    Used for the size limits that the reference measures on the serialized
    form of a request field (queue metadata, posted messages). For msgpack,
    bytes count as themselves, so a binary client can post as many body bytes
    as the limit says; for JSON, the default separators are used, closest to
    the reference, which measures ``str(value)``.
    """
    if binary:
        return len(msgpack.packb(value, use_bin_type=True))
    return len(json.dumps(value, default=_json_default))
