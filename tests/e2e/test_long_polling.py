"""Long polls across processes: woken by a post through another edge and worker.

Topology: ``herald db upgrade``, two storage workers, two REST APIs and a
websocket gateway over RabbitMQ, PostgreSQL and Redis. A claim long-polling
on api-1 and a ``message_list`` long-polling on the gateway are both woken
by one post through api-2 -- whichever worker stores it, its fanout cast
reaches every edge -- well before their deadline.

No sleep and no timing: the post is sent once both edges logged ``long poll
parked`` for the queue (a DEBUG event, so the edges run with Herald's
loggers at DEBUG), and both answers must arrive while their 20 s deadline
is still far off -- a wake-up that never came would show as a join that
times out, not as a slow-machine flake.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
import requests

from herald.testing.topology import Topology, ws_url
from tests.ws.client import WSClient

# The longest wait there is (20 s); a woken poll answers within a second,
# so half of it tells a wake-up from the deadline on any machine.
MAX_WAIT = 20
WOKEN_WITHIN = MAX_WAIT / 2


def _headers(project: str) -> dict[str, str]:
    return {"Client-ID": str(uuid.uuid4()), "X-Project-ID": project,
            "Content-Type": "application/json"}


@pytest.mark.postgres
@pytest.mark.rabbit
@pytest.mark.redis
def test_long_polls_woken_across_edges_and_workers(topology: Topology) -> None:
    # The edges log "long poll parked" (DEBUG) when a waiter parks.
    topology.debug_loggers = ("herald",)
    services = topology.distributed(storage_workers=2, apis=2)
    api1, api2 = services[2], services[3]
    gateway = topology.ws_gateway("ws-1")
    wakeup_topic = f"{topology.backends.rpc_topic}.wakeup"
    for edge in (api1, api2, gateway):
        edge.wait_for_log(f"RPC server listening on topic {wakeup_topic}")
    project = f"e2e-{uuid.uuid4().hex[:8]}"
    parked = f"long poll parked: project {project} queue jobs"
    marks = {edge.name: len(edge.log()) for edge in (api1, gateway)}
    results: dict[str, Any] = {}

    def claim() -> None:
        resp = requests.post(f"{api1.url}/v2/queues/jobs/claims?wait={MAX_WAIT}",
                             json={"ttl": 60}, headers=_headers(project), timeout=60)
        results["claim"] = resp

    def ws_list() -> None:
        client = WSClient(ws_url(gateway), project)
        try:
            # The claim below is woken by the same post and may claim the
            # message before this list reads it; a plain listing hides a
            # claimed message and would wait on to its deadline.
            results["list"] = client.status_body(
                "message_list", {"queue_name": "jobs", "wait": MAX_WAIT,
                                 "include_claimed": True})
        finally:
            client.ws.close()

    waiters = [threading.Thread(target=claim), threading.Thread(target=ws_list)]
    for waiter in waiters:
        waiter.start()
    # Both tried once, found nothing and wait for a wake-up now.
    for edge in (api1, gateway):
        edge.wait_for_log(parked, timeout=30, after=marks[edge.name])
    assert all(waiter.is_alive() for waiter in waiters), results
    resp = requests.post(f"{api2.url}/v2/queues/jobs/messages",
                         json={"messages": [{"body": "wake", "ttl": 300}]},
                         headers=_headers(project), timeout=30)
    assert resp.status_code == 201, resp.text
    # Woken, not answered at the deadline: both answer while it is far off.
    for waiter in waiters:
        waiter.join(WOKEN_WITHIN)
    assert not any(waiter.is_alive() for waiter in waiters), "a long poll was not woken"

    claim_resp = results["claim"]
    assert claim_resp.status_code == 201, claim_resp.text
    assert [m["body"] for m in claim_resp.json()["messages"]] == ["wake"]
    status, body = results["list"]
    assert status == 200 and [m["body"] for m in body["messages"]] == ["wake"]
