"""The edges' fast JSON path agrees with their strict parsers (herald.common.strict_json)."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from herald.common.edge import bodies as body
from herald.common.errors import InvalidBody
from herald.common.strict_json import loads_if_plain

codec = importlib.import_module("herald.ws_gateway.codec")

INT64_MAX = 2**63 - 1

# Texts orjson accepts, some of which the strict parsers refuse or must look at.
CORPUS = [
    b'{"messages": [{"body": {"t": 1.7e9, "seq": 3, "pad": "xxxx"}, "ttl": 3600}]}',
    b'{"a": [null, true, false, -0, 0.1, 5e-324, 1e308, -1.5e-10, "\\u00e9\\n"]}',
    b'{"a": 1, "b": 2, "a": 3}',
    f'{{"max": {INT64_MAX}, "min": {-INT64_MAX - 1}}}'.encode(),
    f'{{"u64": {INT64_MAX + 1}}}'.encode(),            # orjson: int; strict: too large
    b'{"big": 18446744073709551616}',                   # orjson: float; strict: too large
    b'{"big": -123456789012345678901234567890}',
    b'{"digits in a string": "12345678901234567890123"}',
    b'{"brackets in a string": "' + b"[" * 300 + b'"}',
    b"[" * 128 + b"]" * 128,
    b"[" * 129 + b"]" * 129,
    b'{"a": ' * 129 + b"1" + b"}" * 129,
    b'"a scalar"',
    b"null",
    b"[1e308, 1.7976931348623157e308]",
]


def _outcome(parse: Any, text: Any) -> Any:
    try:
        return ("ok", parse(text))
    except (InvalidBody, codec.DecodeError) as exc:
        return ("error", str(exc))


@pytest.mark.parametrize("raw", CORPUS)
def test_rest_bodies_parse_as_the_strict_parser_does(raw: bytes) -> None:
    def strictly(raw: bytes) -> Any:
        document = body._parse_strictly(raw)
        if not isinstance(document, dict | list):
            raise InvalidBody(body.UNPARSEABLE)
        return document

    assert _outcome(body.parse_json, raw) == _outcome(strictly, raw)


@pytest.mark.parametrize("raw", CORPUS)
def test_websocket_frames_decode_as_the_strict_parser_does(raw: bytes,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    frame = raw.decode()
    fast = _outcome(codec.decode, frame)
    monkeypatch.setattr(codec, "loads_if_plain", lambda text, max_depth: None)
    assert fast == _outcome(codec.decode, frame)


@pytest.mark.parametrize("raw", [
    f'[{INT64_MAX + 1}]'.encode(), b'["12345678901234567890"]', b"[" * 129 + b"]" * 129,
    b'{"a": NaN}', b'{"a": "\xff"}', b"null",
])
def test_the_fast_path_declines_what_it_cannot_vouch_for(raw: bytes) -> None:
    assert loads_if_plain(raw, 128) is None


def test_plain_documents_take_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_slow_path(raw: bytes) -> Any:
        raise AssertionError("the strict parser ran")

    monkeypatch.setattr(body, "_parse_strictly", no_slow_path)
    assert body.parse_json(b'{"messages": [{"body": {"n": 12345}, "ttl": 60}]}') == {
        "messages": [{"body": {"n": 12345}, "ttl": 60}]}
    assert loads_if_plain('{"é": [1.5]}', 128) == {"é": [1.5]}
