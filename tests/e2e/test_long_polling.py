"""Long polls across processes: woken by a post through another edge and worker.

Topology: ``herald db upgrade``, two storage workers, two REST APIs and a
websocket gateway over RabbitMQ, PostgreSQL and Redis. A claim long-polling
on api-1 and a ``message_list`` long-polling on the gateway are both woken
by one post through api-2 -- whichever worker stores it, its fanout cast
reaches every edge -- well before their deadline.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
import requests

from tests.e2e.topology import Topology, ws_url
from tests.ws.client import WSClient


def _headers(project: str) -> dict[str, str]:
    return {"Client-ID": str(uuid.uuid4()), "X-Project-ID": project,
            "Content-Type": "application/json"}


@pytest.mark.postgres
@pytest.mark.rabbit
@pytest.mark.redis
def test_long_polls_woken_across_edges_and_workers(topology: Topology) -> None:
    services = topology.distributed(storage_workers=2, apis=2)
    api1, api2 = services[2], services[3]
    gateway = topology.ws_gateway("ws-1")
    wakeup_topic = f"{topology.backends.rpc_topic}.wakeup"
    for edge in (api1, api2, gateway):
        edge.wait_for_log(f"RPC server listening on topic {wakeup_topic}")
    project = f"e2e-{uuid.uuid4().hex[:8]}"
    results: dict[str, Any] = {}

    def claim() -> None:
        started = time.monotonic()
        resp = requests.post(f"{api1.url}/v2/queues/jobs/claims?wait=15",
                             json={"ttl": 60}, headers=_headers(project), timeout=30)
        results["claim"] = (resp, started, time.monotonic())

    def ws_list() -> None:
        client = WSClient(ws_url(gateway), project)
        try:
            started = time.monotonic()
            # The claim below is woken by the same post and may claim the
            # message before this list reads it; a plain listing hides a
            # claimed message and would wait on to its deadline.
            reply = client.status_body("message_list", {"queue_name": "jobs", "wait": 15,
                                                        "include_claimed": True})
            results["list"] = (reply, started, time.monotonic())
        finally:
            client.ws.close()

    waiters = [threading.Thread(target=claim), threading.Thread(target=ws_list)]
    for waiter in waiters:
        waiter.start()
    time.sleep(1.0)  # both are waiting now (each tried once and found nothing)
    resp = requests.post(f"{api2.url}/v2/queues/jobs/messages",
                         json={"messages": [{"body": "wake", "ttl": 300}]},
                         headers=_headers(project), timeout=30)
    posted = time.monotonic()
    assert resp.status_code == 201, resp.text
    for waiter in waiters:
        waiter.join(30)

    claim_resp, claim_started, claim_done = results["claim"]
    assert claim_resp.status_code == 201, claim_resp.text
    assert [m["body"] for m in claim_resp.json()["messages"]] == ["wake"]
    assert claim_done - claim_started >= 0.9
    assert claim_done - posted < 1.0

    (status, body), _, list_done = results["list"]
    assert status == 200 and [m["body"] for m in body["messages"]] == ["wake"]
    assert list_done - posted < 1.0
