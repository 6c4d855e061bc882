"""Fixtures of the websocket gateway tests: gateways on an event loop thread.

The ``harness`` is ``herald.testing.stack.EmbeddedStack``: one embedded
storage worker (SQLite and ``file://`` tooz under ``tmp_path``, no RPC
server) behind an ``InProcessCaller`` -- the same serialization as RabbitMQ
-- and any number of ``WSGatewayService`` instances sharing it, each with
its own configuration (``harness.gateway(**overrides)``), on one asyncio
loop in a background thread. Tests talk to the gateways over real sockets
with synchronous clients (websocket-client, python-zaqarclient).

The caller is ``herald.testing.faults.FaultyCaller``: calls on queues named
``slow-*`` take ``SLOW_SECONDS`` (how tests make one storage call slow), and
calls on queues named ``down-*`` / ``bug-*`` fail as an unreachable storage
(503) or a storage bug (500) would.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from herald.testing.stack import EmbeddedStack, make_conf
from herald.ws_gateway.service import WSGatewayService
from tests.fake_keystone import FakeKeystone

__all__ = ["SLOW_SECONDS", "GatewayHarness", "make_conf", "ws_url"]

SLOW_SECONDS = 1.5


class GatewayHarness(EmbeddedStack):
    """The embedded stack, slow queues taking ``SLOW_SECONDS``; no REST API."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp, slow_seconds=SLOW_SECONDS, loop_name="ws-test-loop")


def ws_url(service: WSGatewayService) -> str:
    return f"ws://127.0.0.1:{service.port}/"


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayHarness]:
    h = GatewayHarness(tmp_path_factory.mktemp("ws"))
    try:
        yield h
    finally:
        h.close()


@pytest.fixture(scope="module")
def gateway(harness: GatewayHarness) -> WSGatewayService:
    return harness.gateway()


@pytest.fixture
def project() -> str:
    """A project of its own per test: tests never see each other's queues."""
    return f"p-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def keystone() -> Iterator[FakeKeystone]:
    """A fake Keystone for a module's keystone-mode gateways."""
    fake = FakeKeystone()
    yield fake
    fake.close()
