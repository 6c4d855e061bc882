"""A gateway dropped from ``herald.ws`` joins it again by itself.

When the tooz backend stalls longer than the membership timeout, the first
storage worker that lists ``herald.ws`` deletes the gateways whose heartbeat
lapsed, and tooz never adds them back; the workers would then treat the
gateway as gone and drop its subscribers' pushes. (The storage workers had
the same flaw, found by tests/faults/test_redis_stall.py.)
"""

from __future__ import annotations

from herald.common import coordination
from herald.testing.polling import wait_until
from tests.ws.conftest import GatewayHarness


def test_a_dropped_gateway_rejoins(harness: GatewayHarness) -> None:
    gateway = harness.gateway()
    gateway.conf.set_override("heartbeat_interval", 0.1, group="coordination")
    assert gateway.member_id in gateway.live_gateways()

    # What a peer's cleanup does to a member whose heartbeat lapsed.
    assert gateway._coordinator is not None
    gateway._coordinator.leave_group(coordination.WS_GROUP.encode()).get()
    assert gateway.member_id not in gateway.live_gateways()

    wait_until(lambda: gateway.member_id in gateway.live_gateways(), 5.0, interval=0.1,
               what="the gateway rejoining herald.ws")
