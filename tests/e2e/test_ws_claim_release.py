"""Claims released with their websocket connection, across gateways and workers.

Topology: ``herald db upgrade``, two storage workers, a REST API and two
``herald ws-gateway`` processes over RabbitMQ, PostgreSQL and Redis (tooz
membership timeout 3 s, as an operator would shorten it for this).

1. A client on gateway 1 (JSON frames) claims every message of a queue with
   ``"release_on_close": true`` and closes its connection; a client on
   gateway 2 (msgpack frames), long-polling ``claim_create`` on the queue
   meanwhile, gets the messages within 1 s of the close.
2. A client on gateway 1 (msgpack) claims them again with the flag, and
   gateway 1 is SIGKILLed: nothing of it runs any more, so the storage
   workers release the claim once gateway 1 has left the tooz group, and a
   REST client claims the messages long before the claim's TTL would end.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from typing import Any

import pytest
import requests

from herald.testing.polling import wait_until
from herald.testing.topology import Backends, Topology, gateway_health, ws_url
from tests.ws.client import WSClient

RELEASED_WITHIN = 1.0
CLAIM_TTL = 60
MEMBERSHIP_TIMEOUT = 3


def _rest_claim(api_url: str, project: str) -> list[str]:
    resp = requests.post(f"{api_url}/v2/queues/jobs/claims", json={"ttl": CLAIM_TTL},
                         headers={"Client-ID": str(uuid.uuid4()), "X-Project-ID": project},
                         timeout=10)
    assert resp.status_code in (201, 204), resp.text
    return [] if resp.status_code == 204 else sorted(m["id"] for m in resp.json()["messages"])


@pytest.mark.postgres
@pytest.mark.rabbit
@pytest.mark.redis
def test_claims_released_on_close_and_on_gateway_kill(topology: Topology,
                                                      backends: Backends) -> None:
    env = {"OS_COORDINATION__BACKEND_URL":
           f"{backends.coordination_url}&membership_timeout={MEMBERSHIP_TIMEOUT}"}
    topology.distributed(storage_workers=2, apis=1, env=env)
    api = topology.services["api"]
    gw1 = topology.ws_gateway("ws-1", env=env)
    gw2 = topology.ws_gateway("ws-2", env=env)
    gw2.wait_for_log(f"RPC server listening on topic {backends.rpc_topic}.wakeup")
    project = f"e2e-{uuid.uuid4().hex[:8]}"
    holder = WSClient(ws_url(gw1), project)
    other = WSClient(ws_url(gw2), project, binary=True)
    try:
        status, body = other.status_body("message_post", {
            "queue_name": "jobs", "messages": [{"body": {"n": n}, "ttl": 600}
                                               for n in range(3)]})
        assert status == 201, body
        ids = sorted(body["message_ids"])
        status, claim = holder.status_body("claim_create", {
            "queue_name": "jobs", "ttl": CLAIM_TTL, "release_on_close": True})
        assert status == 201 and sorted(m["id"] for m in claim["messages"]) == ids
        assert _rest_claim(api.url, project) == []

        # 1. The connection closes: gateway 1 releases, gateway 2's poll wakes.
        answer: dict[str, Any] = {}

        def poll() -> None:
            answer["reply"] = other.status_body("claim_create", {
                "queue_name": "jobs", "ttl": CLAIM_TTL, "wait": 20})
            answer["at"] = time.monotonic()

        poller = threading.Thread(target=poll)
        poller.start()
        closed_at = time.monotonic()
        holder.close()
        poller.join(15)
        assert not poller.is_alive(), "the long poll on gateway 2 never answered"
        status, body = answer["reply"]
        assert status == 201, body
        assert sorted(m["id"] for m in body["messages"]) == ids
        after_close = answer["at"] - closed_at
        assert after_close < RELEASED_WITHIN, f"claimable after {after_close:.2f} s"
        assert other.status_body("claim_delete", {"queue_name": "jobs",
                                                  "claim_id": body["claim_id"]})[0] == 204

        # 2. Gateway 1 is killed with its connection open.
        gw1_id = gateway_health(gw1.url)["gateway"]
        doomed = WSClient(ws_url(gw1), project, binary=True)
        status, claim = doomed.status_body("claim_create", {
            "queue_name": "jobs", "ttl": CLAIM_TTL, "release_on_close": True})
        assert status == 201 and sorted(m["id"] for m in claim["messages"]) == ids
        assert _rest_claim(api.url, project) == []
        killed_at = time.monotonic()
        gw1.send(signal.SIGKILL)
        released = wait_until(lambda: _rest_claim(api.url, project), CLAIM_TTL / 2,
                              interval=0.2, what="the killed gateway's claim released")
        after_kill = time.monotonic() - killed_at
        assert released == ids
        assert gw1_id not in gateway_health(gw2.url)["gateways"]
        # Well within the TTL: the membership timeout plus a heartbeat or two.
        assert after_kill < MEMBERSHIP_TIMEOUT + 10, f"released after {after_kill:.1f} s"
        print(f"claimable again {after_close * 1000:.0f} ms after the close, "
              f"{after_kill:.1f} s after SIGKILL (claim ttl {CLAIM_TTL} s)")
        doomed.ws.close()
    finally:
        holder.close()
        other.close()
