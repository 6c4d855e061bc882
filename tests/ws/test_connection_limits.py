"""Many idle or slow connections cannot exhaust the gateway (issue 9, isolation and abuse).

- ``[ws_gateway] max_connections``: a handshake beyond it gets HTTP 503;
  once a connection closes, a new one is accepted again.
- ``[ws_gateway] handshake_timeout``: a TCP connection that never completes
  its HTTP request (slowloris) is closed by the gateway.
"""

from __future__ import annotations

import socket
import time

import pytest
import websocket

from herald.testing.polling import wait_until
from tests.ws.client import WSClient
from tests.ws.conftest import GatewayHarness, ws_url


def test_connections_beyond_the_limit_are_refused_with_503(harness: GatewayHarness,
                                                           project: str) -> None:
    small = harness.gateway(max_connections=2)
    url = ws_url(small)
    first, second = WSClient(url, project), WSClient(url, project)
    try:
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(url, timeout=5)
        assert refused.value.status_code == 503
        # Those already open still work.
        assert second.status_body("queue_list")[0] == 200
        first.close()
        wait_until(lambda: len(small.connections) < 2, 5,
                   what="the closed connection released")
        with WSClient(url, project) as third:
            assert third.status_body("queue_list")[0] == 200
    finally:
        first.close()
        second.close()


def test_a_connection_that_never_finishes_its_handshake_is_closed(harness: GatewayHarness
                                                                  ) -> None:
    slow = harness.gateway(handshake_timeout=0.5)
    with socket.create_connection(("127.0.0.1", slow.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and never the end of the headers
        started = time.monotonic()
        assert sock.recv(1024) == b"", "the gateway kept a half-sent handshake open"
        assert time.monotonic() - started < 4
