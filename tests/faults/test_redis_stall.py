"""Scenario: the tooz Redis stalled (SIGSTOP) longer than the membership timeout.

Coordination goes to a private ``redis-server`` the test started (the
machine's Redis is shared and is never stopped); its tooz membership timeout
is ``MEMBERSHIP_TIMEOUT`` s. Under a steady load it is SIGSTOPped for
``STALL`` s -- every worker's heartbeat expires -- then resumed.

- Claims are decided by the database, not by tooz: the ledger must show no
  double claim and no lost message, and the load must go on during the stall.
- The partition map converges: afterwards every worker's view of the
  ``herald.storage`` group (``workers`` in ``GET /v2/health``, answered by
  whichever worker takes the call) is exactly the set of live workers again,
  and the websocket gateway is back in ``herald.ws`` (``GET /health``) --
  else the workers would drop its subscribers' pushes as "gateway gone".
"""

from __future__ import annotations

import re
import signal
import time
import uuid
from pathlib import Path

import pytest

from herald.testing.topology import Topology, gateway_health, ws_url
from tests.faults.harness import (
    Client,
    WSListener,
    fault_seconds,
    rate,
    report,
    start_load,
    start_private_redis,
    verify,
)

pytestmark = [pytest.mark.postgres, pytest.mark.rabbit]

MEMBERSHIP_TIMEOUT = 3
STALL = 2 * MEMBERSHIP_TIMEOUT
CONVERGENCE_BOUND = 20.0
# How long after Redis resumes pushes to the websocket subscriber must flow again.
PUSH_RESUME_BOUND = 30.0
ADMIN = {"X-Roles": "admin"}


def _member_id(log: str) -> str:
    found = re.search(r"storage worker (\S+) started", log)
    assert found, "no start line in the worker's log"
    return found.group(1)


def test_redis_stalled_past_the_membership_timeout(topology: Topology, tmp_path: Path) -> None:
    redis, redis_url = start_private_redis(topology)
    coordination_url = (f"{redis_url}?namespace=faults-{uuid.uuid4().hex[:8]}"
                        f"&membership_timeout={MEMBERSHIP_TIMEOUT}")
    # The bus nonce store lives in this Redis too: by default a stalled Redis
    # leaves each process checking replays in its own memory meanwhile
    # (docs/bus-security.md), so storage keeps serving.
    env = {"OS_COORDINATION__BACKEND_URL": coordination_url, "OS_DEFAULT__ADMIN_MODE": "true",
           "OS_COORDINATION__HEARTBEAT_INTERVAL": "0.5"}
    workers = topology.distributed(storage_workers=2, apis=1, env=env)[:2]
    api = topology.services["api"]
    gateway = topology.ws_gateway("ws", env=env)
    live = {_member_id(w.log()) for w in workers}

    def gateway_listed() -> bool:
        health = gateway_health(gateway.url or "")
        return bool(health and health["gateway"] in (health.get("gateways") or []))

    project, queue = f"faults-{uuid.uuid4().hex[:8]}", "stall"
    client = Client(api.url, project)
    assert client.request("PUT", f"/v2/queues/{queue}").status_code == 201

    def views(n: int = 6) -> list[frozenset[str]]:
        seen = []
        for _ in range(n):
            response = client.request("GET", "/v2/health", headers=ADMIN)
            seen.append(frozenset(response.json()["workers"]) if response.status_code == 200
                        else frozenset({f"status {response.status_code}"}))
        return seen

    assert all(v == live for v in views()), views()
    # Pushes to this websocket subscriber make the workers list herald.ws,
    # which is when a gateway with a lapsed heartbeat gets dropped from it.
    listener = WSListener([ws_url(gateway)], project, queue)
    listener.start()
    load = start_load(api.url, project, queue)
    before = max(3.0, (fault_seconds() - STALL) / 2)
    try:
        time.sleep(before)
        stalled_at = time.time()
        redis.send(signal.SIGSTOP)
        time.sleep(STALL)
        redis.send(signal.SIGCONT)
        resumed_at = time.time()
        converged_after = None
        last: list[frozenset[str]] = []
        while time.time() - resumed_at < CONVERGENCE_BOUND:
            last = views()
            if all(v == live for v in last) and gateway_listed():
                converged_after = time.time() - resumed_at
                break
            time.sleep(0.5)
        time.sleep(max(0.0, fault_seconds() - before - STALL - (time.time() - resumed_at)))
        # A push that failed while the gateway was out of herald.ws waits for
        # the next step of its retry policy (seconds): give pushes a bounded
        # time to flow again rather than a fixed window that a loaded
        # machine can miss.
        settled = resumed_at + (converged_after or 0) + 2.0
        while (time.time() < resumed_at + PUSH_RESUME_BOUND
               and not any(t > settled for _, t in listener.received)):
            time.sleep(0.2)
    finally:
        redis.send(signal.SIGCONT)
        load.stop()
        listener.stopping.set()
        listener.join(10)

    ledger = load.ledger
    acks = ledger.ack_times()
    verdict = verify(ledger, client, queue)
    pushes_after = sum(1 for _, t in listener.received if t > settled)
    # Herald's processes leave their tooz groups on SIGTERM: stop them while
    # their Redis still answers (teardown would stop everything at once).
    herald = [s for name, s in topology.services.items() if name != "redis" and s.running()]
    for service in herald:
        service.send(signal.SIGTERM)
    for service in herald:
        service.stop()
    report("tooz Redis stalled", tmp_path, ledger, verdict, stall_s=STALL,
           membership_timeout_s=MEMBERSHIP_TIMEOUT,
           acks_per_s_before=round(rate(acks, load.started + 1, stalled_at), 1),
           acks_per_s_during_stall=round(rate(acks, stalled_at, resumed_at), 1),
           partition_map_converged_s=None if converged_after is None
           else round(converged_after, 2),
           ws_pushes_before_stall=sum(1 for _, t in listener.received if t < stalled_at),
           ws_pushes_after_convergence=pushes_after)
    verdict.assert_ok()
    assert rate(acks, stalled_at, resumed_at) > 0, "the load stopped while Redis was stalled"
    assert converged_after is not None, (
        f"views of herald.storage did not converge to {sorted(live)} within "
        f"{CONVERGENCE_BOUND:.0f} s of Redis resuming: {[sorted(v) for v in last]}, "
        f"gateway in herald.ws: {gateway_listed()}")
    for operation, counter in ledger.statuses.items():
        assert set(counter) <= {"201", "204"}, (operation, counter)
    assert pushes_after > 0, "the websocket subscriber got no push after Redis resumed"
