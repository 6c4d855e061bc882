"""The RPC payload serializer (herald.common.rpc.serializer) and the bus
signature's canonical form: bytes cross as tagged base64 and come back as
bytes; payloads without bytes are passed through untouched."""

from __future__ import annotations

import datetime
import json

import pytest

from herald.common.rpc import bus_auth
from herald.common.rpc.serializer import canonical_bytes, canonical_json, decode, dumps, encode


def test_bytes_anywhere_cross_as_tagged_base64_and_come_back() -> None:
    value = {"messages": [{"body": b"\x00\xffraw", "ttl": 60},
                          {"body": {"nested": [b"x", "text", 1.5, None]}}],
             "tuple": (b"y", 2)}
    wire = encode(value)
    text = json.dumps(wire)  # what RabbitMQ carries: plain JSON
    assert "\\u0000" not in text and "__herald_bytes__" in text
    assert decode(json.loads(text)) == {
        "messages": [{"body": b"\x00\xffraw", "ttl": 60},
                     {"body": {"nested": [b"x", "text", 1.5, None]}}],
        "tuple": [b"y", 2]}


def test_payloads_without_bytes_are_not_copied() -> None:
    value = {"messages": [{"body": {"k": "v" * 1024}, "ttl": 60}]}
    assert encode(value) is value
    assert decode(value) is value


def _nested(value: object, depth: int) -> object:
    for _ in range(depth):
        value = [value]
    return value


def test_values_the_fast_look_refuses_still_cross() -> None:
    """Integers beyond 64 bits, non-string keys and very deep nesting are
    JSON to ``json`` but not to orjson, which looks for bytes first."""
    value = {"big": 2**70, "keys": {1: b"one"}, "deep": _nested(b"deep", 300)}
    received = decode(json.loads(json.dumps(encode(value))))
    assert received == {"big": 2**70, "keys": {"1": b"one"}, "deep": _nested(b"deep", 300)}
    plain = {"big": 2**70, "keys": {1: "one"}}
    assert encode(plain) is plain and decode(plain) is plain


def test_dumps_is_the_json_of_the_encoded_value() -> None:
    for value in ({"body": {"k": "é", "n": 1.5e16, "raw": b"\x00"}}, {"plain": [1, "x"]},
                  "text", 2**70):
        assert dumps(value) == json.dumps(encode(value))


def test_a_body_that_only_mentions_the_tag_is_left_alone() -> None:
    value = {"body": {"__herald_bytes__": 5, "other": "__herald_bytes__"}}
    assert decode(encode(value)) == value


@pytest.mark.parametrize("body", [
    b"\x01\x02",
    {"text": "é ✓ \u2028", "float": 1e16, "tiny": 5e-324, "nan": float("nan"),
     "int_keys": {1: "a", 2.5: "b", None: "d"}, "tuple": (1, "x")},
    {"big": 2**70, "raw": b"x"},                       # orjson refuses: version 1's text
    _nested(b"deep", 300),                             # orjson refuses: version 1's text
])
def test_sender_and_receiver_hash_the_same_canonical_text(body: object) -> None:
    """What a sender signs (the raw value) and what the receiver checks
    (the value decoded from the wire JSON) have the same canonical text."""
    kwargs = {"messages": [{"body": body, "ttl": 60}], "queue": "q"}
    received = decode(json.loads(json.dumps(encode(kwargs))))
    assert canonical_bytes(kwargs) == canonical_bytes(received)


def test_what_is_not_json_cannot_be_signed() -> None:
    """orjson could write a datetime, json cannot: the canonical text refuses
    it as version 1 did, instead of hashing a text the receiver never sees."""
    with pytest.raises(TypeError):
        canonical_bytes({"when": datetime.datetime.now(datetime.UTC)})


def test_the_signature_covers_bytes_as_they_cross() -> None:
    """Signer (raw kwargs) and verifier (kwargs decoded from the wire) must
    compute the same canonical text."""
    kwargs = {"messages": [{"body": b"\x01\x02"}], "queue": "q"}
    received = decode(json.loads(json.dumps(encode(kwargs))))
    assert canonical_json(kwargs) == canonical_json(received)
    auth = bus_auth.sign("k", "message_post", kwargs, {"project_id": "p"}, ts=1.0, nonce="n")
    again = bus_auth.sign("k", "message_post", received, {"project_id": "p"}, ts=1.0,
                          nonce="n")
    assert auth["sig"] == again["sig"]
