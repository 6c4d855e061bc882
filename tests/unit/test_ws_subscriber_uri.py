"""The URI of a websocket connection subscriber (``herald.common.subscriptions``):
what ``ws_subscriber_uri`` makes, ``parse_ws_subscriber`` reads back, and
anything else is read as a URI parser reads it (its fast path changes
nothing)."""

from __future__ import annotations

import urllib.parse

import pytest

from herald.common.subscriptions import WS_SUBSCRIBER_HOST, parse_ws_subscriber, ws_subscriber_uri


def by_urlparse(uri: str) -> tuple[str, str] | None:
    """The general rule: host ``herald-ws.invalid``, a path of exactly two
    non-empty segments, the first one unquoted."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.netloc != WS_SUBSCRIBER_HOST:
        return None
    parts = parsed.path.strip("/").split("/")
    if len(parts) != 2 or not all(parts):
        return None
    return urllib.parse.unquote(parts[0]), parts[1]


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
    assert parse_ws_subscriber(uri) == by_urlparse(uri)
