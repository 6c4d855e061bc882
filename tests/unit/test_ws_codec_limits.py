"""The websocket codec refuses what the REST API refuses: deep nesting and NaN/Infinity.

Found by the frame fuzz (tests/ws/test_fuzz.py): a msgpack message body
nested 1000 levels deep decoded fine and then failed in the storage call
with a RecursionError (500), and NaN/Infinity -- not JSON, refused by
PostgreSQL's jsonb -- got into stored messages through either frame kind.
"""

from __future__ import annotations

import math

import msgpack
import pytest

from herald.ws_gateway import codec


def _nested(depth: int) -> object:
    value: object = "x"
    for _ in range(depth - 1):
        value = [value]
    return value


def test_nesting_at_the_limit_decodes() -> None:
    document = {"body": _nested(codec.MAX_DEPTH - 1)}
    assert codec.decode(msgpack.packb(document)) == document


@pytest.mark.parametrize("binary", [True, False])
def test_deeper_nesting_is_a_decode_error(binary: bool) -> None:
    document = {"action": "message_post", "body": {"messages": [{"body": _nested(400)}]}}
    frame = codec.encode(document, binary)
    with pytest.raises(codec.DecodeError, match="nested deeper than 128 levels"):
        codec.decode(frame)


@pytest.mark.parametrize("frame", [
    '{"body": NaN}', '{"body": [Infinity]}', '{"body": -Infinity}',
    msgpack.packb({"body": math.nan}), msgpack.packb({"body": {"x": math.inf}}),
])
def test_non_finite_numbers_are_a_decode_error(frame: str | bytes) -> None:
    with pytest.raises(codec.DecodeError, match="not a number"):
        codec.decode(frame)
