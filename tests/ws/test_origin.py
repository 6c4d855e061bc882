"""The handshake's origin check (``[ws_gateway] allowed_origins``) over real sockets.

Default: no Origin (non-browser clients) and the gateway's own origin pass,
any other page origin gets 403. A list admits those origins, ``*`` any.
A refusal is logged with the origin and the option to change.
"""

from __future__ import annotations

import logging

import pytest
import websocket

from herald.ws_gateway.service import WSGatewayService
from tests.ws.conftest import GatewayHarness, ws_url

PAGE = "http://console.example:3000"


def handshake(service: WSGatewayService, origin: str | None,
              extra: list[str] | None = None) -> int:
    """101 if the gateway upgraded, else the refusal's HTTP status."""
    try:
        ws = websocket.create_connection(
            ws_url(service), timeout=10, origin=origin, suppress_origin=origin is None,
            header=extra or [])
    except websocket.WebSocketBadStatusException as exc:
        return exc.status_code
    try:
        # Prove the connection really works, not just the upgrade.
        ws.send('{"action": "queue_list", "headers": {"Client-ID": "c", "X-Project-ID": "p"}}')
        assert '"status":200' in ws.recv()
    finally:
        ws.close()
    return 101


@pytest.fixture(scope="module")
def default_gateway(harness: GatewayHarness) -> WSGatewayService:
    return harness.gateway()


def test_no_origin_is_allowed(default_gateway: WSGatewayService) -> None:
    assert handshake(default_gateway, None) == 101


def test_own_origin_is_allowed(default_gateway: WSGatewayService) -> None:
    own = f"http://127.0.0.1:{default_gateway.port}"
    assert handshake(default_gateway, own) == 101
    # Browsers that send Sec-Fetch-Site say so themselves.
    assert handshake(default_gateway, own, ["Sec-Fetch-Site: same-origin"]) == 101


def test_other_origin_is_refused_by_default(default_gateway: WSGatewayService,
                                            caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="herald.ws_gateway.origin"):
        assert handshake(default_gateway, PAGE) == 403
        assert handshake(default_gateway, PAGE, ["Sec-Fetch-Site: cross-site"]) == 403
    # Another port of the same host is another origin.
    assert handshake(default_gateway, f"http://127.0.0.1:{default_gateway.port + 1}") == 403
    messages = [r.getMessage() for r in caplog.records]
    assert any(PAGE in m and "[ws_gateway] allowed_origins" in m for m in messages), messages


def test_an_origin_urllib_cannot_split_is_refused(default_gateway: WSGatewayService) -> None:
    # Unbalanced IPv6 brackets: urlsplit raises; a 403, not a 500.
    assert handshake(default_gateway, "http://[::1") == 403
    assert handshake(default_gateway, "http://h]x") == 403


def test_listed_origins_are_allowed(harness: GatewayHarness) -> None:
    service = harness.gateway(allowed_origins=[PAGE, "https://Other.Example/"])
    assert handshake(service, PAGE) == 101
    assert handshake(service, PAGE, ["Sec-Fetch-Site: cross-site"]) == 101
    assert handshake(service, "https://other.example") == 101  # case, trailing slash
    assert handshake(service, "http://other.example") == 403  # scheme counts
    assert handshake(service, "http://evil.example") == 403
    assert handshake(service, f"http://127.0.0.1:{service.port}") == 101  # still its own
    assert handshake(service, None) == 101


def test_wildcard_allows_any_origin(harness: GatewayHarness) -> None:
    service = harness.gateway(allowed_origins=["*"])
    for origin in (PAGE, "http://evil.example", "null"):
        assert handshake(service, origin, ["Sec-Fetch-Site: cross-site"]) == 101
