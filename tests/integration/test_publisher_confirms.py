"""Integration: ``[rpc] publisher_confirms`` decides how RPC publishes go.

An oslo.messaging RPC server and an ``OsloCaller`` on the machine's RabbitMQ,
in this process, after ``publisher_confirms.apply()`` as every Herald service
runs it at start. Calls must be answered either way; every AMQP connection
the two opened must be in confirm mode exactly when confirms are on, and a
channel that published must have waited for confirms only then.
"""

from __future__ import annotations

import asyncio
import gc
import uuid
from collections.abc import Iterator
from typing import Any

import amqp
import oslo_messaging
import pytest

from herald.common import config
from herald.common.context import RequestContext
from herald.common.rpc import STORAGE_API_VERSION, publisher_confirms
from herald.common.rpc.caller import OsloCaller
from herald.common.rpc.server import RPCServer

pytestmark = [pytest.mark.rabbit]


class _PingEndpoint:
    target = oslo_messaging.Target(version=STORAGE_API_VERSION)

    def ping(self, ctxt: Any) -> bool:
        return True


@pytest.fixture
def conf(rabbit_url: str, rpc_topic: str) -> Iterator[Any]:
    conf = config.load([])
    conf.set_override("transport_url", rabbit_url)
    conf.set_override("topic", rpc_topic, group="rpc")
    yield conf
    conf.clear_override("transport_url")
    conf.clear_override("topic", group="rpc")


@pytest.fixture
def restore_kombu() -> Iterator[None]:
    yield
    publisher_confirms.apply(True)  # kombu's own, as the rest of the session expects


def _connections() -> list[amqp.Connection]:
    return [o for o in gc.get_objects() if isinstance(o, amqp.Connection)]


@pytest.mark.parametrize("enabled", [False, True])
def test_rpc_connections_confirm_publishes_only_when_configured(
        conf: Any, rpc_topic: str, enabled: bool, restore_kombu: None) -> None:
    before = {id(c) for c in _connections()}
    publisher_confirms.apply(enabled)
    server = RPCServer(conf, rpc_topic, f"confirms-{uuid.uuid4().hex[:6]}", [_PingEndpoint()])
    server.start()
    caller = OsloCaller(conf)
    try:
        ctxt = RequestContext(project_id="p", request_id="req-confirms")
        for _ in range(3):
            assert asyncio.run(caller.call(ctxt, "ping")) is True
        opened = [c for c in _connections() if id(c) not in before and c.connected]
        # The caller's (publish, reply queue) and the server's (listen, reply).
        assert len(opened) >= 2
        assert {c.confirm_publish for c in opened} == {enabled}
        published = [ch for c in opened for ch in c.channels.values()
                     if isinstance(ch, amqp.Channel) and ch._confirm_selected]
        assert bool(published) is enabled
    finally:
        caller.stop()
        server.stop()
