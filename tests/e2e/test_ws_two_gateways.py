"""Two websocket gateways over one cluster: gateways are interchangeable.

Topology: ``herald db upgrade``, two ``herald storage`` workers and two
``herald ws-gateway`` processes over RabbitMQ, PostgreSQL and Redis. A
client on gateway 1 posts; a client on gateway 2 lists, claims and deletes
the message. Both gateways see each other in tooz (``GET /health``); a
SIGTERM'd gateway closes its connections with 1001, leaves the group and
exits 0.
"""

from __future__ import annotations

import signal
import struct
import uuid

import pytest
import websocket

from herald.testing.topology import Topology, gateway_health, ws_url
from tests.ws.client import WSClient


@pytest.mark.postgres
@pytest.mark.rabbit
@pytest.mark.redis
def test_post_on_one_gateway_consume_on_the_other(topology: Topology) -> None:
    topology.distributed(storage_workers=2, apis=0)
    gw1 = topology.ws_gateway("ws-1")
    gw2 = topology.ws_gateway("ws-2")
    project = f"e2e-{uuid.uuid4().hex[:8]}"

    members = set(gateway_health(gw1.url)["gateways"])
    assert gateway_health(gw1.url)["gateway"] in members
    assert gateway_health(gw2.url)["gateway"] in members and len(members) == 2

    producer = WSClient(ws_url(gw1), project)
    consumer = WSClient(ws_url(gw2), project, binary=True)
    try:
        status, body = producer.status_body("message_post", {
            "queue_name": "shared", "messages": [{"body": {"event": "hello"}, "ttl": 300}]})
        assert status == 201, body
        posted = body["message_ids"]
        # msgpack binary body, across RabbitMQ and PostgreSQL, byte-identical.
        blob = bytes(range(256))
        status, body = consumer.status_body("message_post", {
            "queue_name": "shared", "messages": [{"body": blob}]})
        assert status == 201, body
        posted += body["message_ids"]

        status, body = consumer.status_body("message_list",
                                            {"queue_name": "shared", "echo": True})
        assert status == 200
        assert [(m["id"], m["body"]) for m in body["messages"]] == [
            (posted[0], {"event": "hello"}), (posted[1], blob)]

        status, claim = consumer.status_body("claim_create",
                                             {"queue_name": "shared", "limit": 1})
        assert status == 201
        assert [m["id"] for m in claim["messages"]] == [posted[0]]
        # The claim is visible through the other gateway: no gateway state.
        assert producer.status_body("claim_get", {"queue_name": "shared",
                                                  "claim_id": claim["claim_id"]})[0] == 200
        assert consumer.status_body("message_delete", {
            "queue_name": "shared", "message_id": posted[0],
            "claim_id": claim["claim_id"]}) == (204, {})
        status, body = producer.status_body("message_list", {
            "queue_name": "shared", "echo": True, "include_claimed": True})
        assert [m["id"] for m in body["messages"]] == [posted[1]]

        # SIGTERM: connections closed with 1001, group left, exit code 0.
        gw2_id = gateway_health(gw2.url)["gateway"]
        gw2.send(signal.SIGTERM)
        consumer.ws.settimeout(15)
        opcode, data = consumer.ws.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert struct.unpack("!H", data[:2])[0] == 1001
        assert gw2.wait(15) == 0
        assert gw2_id not in gateway_health(gw1.url)["gateways"]
        # The survivor still serves.
        assert producer.status_body("queue_get_stats", {"queue_name": "shared"})[0] == 200
    finally:
        producer.close()
        consumer.close()
