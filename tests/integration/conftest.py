"""Fixtures of the integration tests that run RPC on the machine's RabbitMQ."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import oslo_messaging
import pytest

from herald.common import config
from herald.common.context import RequestContext
from herald.common.rpc import STORAGE_API_VERSION
from herald.common.rpc.caller import OsloCaller
from herald.common.rpc.server import RPCServer


class _PingEndpoint:
    target = oslo_messaging.Target(version=STORAGE_API_VERSION)

    def ping(self, ctxt: Any) -> bool:
        return True


@pytest.fixture
def rpc_conf(rabbit_url: str, rpc_topic: str) -> Iterator[Any]:
    """The global configuration, pointed at RabbitMQ and a topic of this test."""
    conf = config.load([])
    conf.set_override("transport_url", rabbit_url)
    conf.set_override("topic", rpc_topic, group="rpc")
    conf.set_override("call_timeout", 10, group="rpc")
    yield conf
    conf.clear_override("transport_url")
    conf.clear_override("topic", group="rpc")
    conf.clear_override("call_timeout", group="rpc")


@pytest.fixture
def pinged_caller(rpc_conf: Any, rpc_topic: str) -> Iterator[Callable[[], OsloCaller]]:
    """Starts an RPC server answering ``ping`` and an ``OsloCaller`` when
    called (after the test changed what it tests), pings three times (the
    reply queue opens with the first call) and returns the caller; both are
    stopped after the test."""
    started: list[tuple[RPCServer, OsloCaller]] = []

    def start() -> OsloCaller:
        server = RPCServer(rpc_conf, rpc_topic, f"ping-{uuid.uuid4().hex[:6]}",
                           [_PingEndpoint()])
        server.start()
        caller = OsloCaller(rpc_conf)
        started.append((server, caller))
        ctxt = RequestContext(project_id="p", request_id="req-ping")
        for _ in range(3):
            assert asyncio.run(caller.call(ctxt, "ping")) is True
        return caller

    yield start
    for server, caller in started:
        caller.stop()
        server.stop()
