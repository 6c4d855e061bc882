"""The URI of a websocket connection subscriber (``herald.common.subscriptions``):
what ``ws_subscriber_uri`` makes, ``parse_ws_subscriber`` reads back, and
anything else is read as a URI parser reads it (its fast path changes
nothing)."""

from __future__ import annotations

import pytest

from herald.common.subscriptions import (
    parse_ws_subscriber,
    parse_ws_subscriber_uri,
    ws_subscriber_uri,
)


@pytest.mark.parametrize(("gateway", "connection"), [
    ("vm.1234.ab12cd34", "0f" * 16), ("a/b", "c"), ("a b%", "c"), ("ü", "x")])
def test_what_is_made_is_read_back(gateway: str, connection: str) -> None:
    parse_ws_subscriber.cache_clear()
    assert parse_ws_subscriber(ws_subscriber_uri(gateway, connection)) == (gateway, connection)


@pytest.mark.parametrize("uri", [
    "http://herald-ws.invalid/g/c/", "http://herald-ws.invalid/g//c",
    "http://herald-ws.invalid/g/c?x=1", "http://herald-ws.invalid/g/c#f",
    "http://herald-ws.invalid/g/c;p", "http://herald-ws.invalid//c",
    "http://herald-ws.invalid/g/", "http://herald-ws.invalid/g",
    "http://herald-ws.invalid/g/c/d", "http://herald-ws.invalid/g%2Fh/c",
    "http://other.example/g/c", "https://herald-ws.invalid/g/c",
    "HTTP://herald-ws.invalid/g/c", "http://herald-ws.invalid:80/g/c",
    "mailto:someone@example.com", "http://herald-ws.invalid/%/c"])
def test_anything_else_is_read_as_a_uri_parser_reads_it(uri: str) -> None:
    parse_ws_subscriber.cache_clear()
    assert parse_ws_subscriber(uri) == parse_ws_subscriber_uri(uri)


@pytest.mark.parametrize(("uri", "expected"), [
    ("http://herald-ws.invalid/g%2Fh/c", ("g/h", "c")), ("http://herald-ws.invalid/g/c?x=1",
                                                          ("g", "c")),
    ("http://herald-ws.invalid/g//c", None), ("http://herald-ws.invalid/g/c/d", None),
    ("http://other.example/g/c", None), ("http://herald-ws.invalid:80/g/c", None)])
def test_the_general_rule(uri: str, expected: tuple[str, str] | None) -> None:
    """Host ``herald-ws.invalid``, exactly two non-empty path segments, the
    first unquoted."""
    assert parse_ws_subscriber_uri(uri) == expected
