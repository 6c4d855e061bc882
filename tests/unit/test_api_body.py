"""Strict JSON request bodies of the REST API (rest-v2.md §0.4)."""

from __future__ import annotations

import pytest

from herald.common.edge.bodies import (
    INT64_MAX,
    INT64_MIN,
    MAX_DEPTH,
    checked_int,
    parse_json,
    require_array,
    require_object,
)
from herald.common.errors import InvalidBody


@pytest.mark.parametrize("raw,value", [
    (b'{"a": 1}', {"a": 1}),
    (b"[1, 2]", [1, 2]),
    (b' {"a": [null, true, 1.5, "x"]} ', {"a": [None, True, 1.5, "x"]}),
    (f'{{"max": {INT64_MAX}, "min": {INT64_MIN}}}'.encode(), {"max": INT64_MAX, "min": INT64_MIN}),
    ('{"k": "é€"}'.encode(), {"k": "é€"}),
])
def test_valid_bodies(raw: bytes, value: object) -> None:
    assert parse_json(raw) == value


@pytest.mark.parametrize("raw,message", [
    (b"", "Request body can not be empty"),
    (b"{", "Request body could not be parsed."),
    (b"123", "Request body could not be parsed."),
    (b'"x"', "Request body could not be parsed."),
    (b"null", "Request body could not be parsed."),
    (b"true", "Request body could not be parsed."),
    (b"   ", "Request body could not be parsed."),
    (b'{"a": NaN}', "Request body could not be parsed."),
    (b'{"a": Infinity}', "Request body could not be parsed."),
    (b'{"a": 1e400}', "Request body could not be parsed."),
    (b'{"a": "\xff"}', "Request body could not be parsed."),
    (b"\xef\xbb\xbf{}", "Request body could not be parsed."),
    (f'{{"a": {INT64_MAX + 1}}}'.encode(), "JSON contains integer that is too large."),
    (f'[{INT64_MIN - 1}]'.encode(), "JSON contains integer that is too large."),
    (b"[" + b"9" * 5000 + b"]", "JSON contains integer that is too large."),
    (b"[" * 100000 + b"]" * 100000, "Request body could not be parsed."),
])
def test_invalid_bodies(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidBody) as info:
        parse_json(raw)
    assert info.value.description == message
    assert info.value.status == 400


def test_require_types() -> None:
    assert require_object({"a": 1}) == {"a": 1}
    assert require_array([1]) == [1]
    for wrong, check in (([], require_object), ({}, require_array)):
        with pytest.raises(InvalidBody) as info:
            check(wrong)
        assert info.value.description == "Document type not supported."


def test_checked_int() -> None:
    assert checked_int({"ttl": 70}, "ttl", 300) == 70
    assert checked_int({}, "ttl", 300) == 300
    assert checked_int({"ttl": True}, "ttl", 300) == 1  # bool is an int, as in the reference
    assert checked_int({"ttl": None}, "ttl", 300, null_is_default=True) == 300
    with pytest.raises(InvalidBody, match='must be a int'):
        checked_int({"ttl": None}, "ttl", 300)
    with pytest.raises(InvalidBody, match='The value of the "ttl" field must be a int.'):
        checked_int({"ttl": "70"}, "ttl", 300)
    with pytest.raises(InvalidBody, match='must be a int'):
        checked_int({"ttl": 70.0}, "ttl", 300)
    with pytest.raises(InvalidBody, match='Missing "ttl" field.'):
        checked_int({}, "ttl", None)


def test_nesting_depth_limit() -> None:
    assert parse_json(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH)
    deep_object = b'{"a": ' * MAX_DEPTH + b"1" + b"}" * MAX_DEPTH
    assert parse_json(deep_object)
    for raw in (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1),
                b'{"a": ' * (MAX_DEPTH + 1) + b"1" + b"}" * (MAX_DEPTH + 1),
                b'{"x": [1, {"y": ' + b"[" * MAX_DEPTH + b"]" * MAX_DEPTH + b"}]}"):
        with pytest.raises(InvalidBody) as info:
            parse_json(raw)
        assert info.value.description.startswith("Request body could not be parsed.")
