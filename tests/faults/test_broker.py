"""Scenario: every RabbitMQ connection of every service dropped mid-run.

Two kinds of outage: ``reset`` (the connections are reset, the broker
refuses new ones: a broker process that died) and ``silent`` (the bytes
vanish without FIN or RST, then the "rebooted" broker resets the stale
connections when they send: a broker host that died). Only heartbeats
reveal the silent kind to a connection that is just waiting (an RPC
server's consumer).

The API and both storage workers reach RabbitMQ only through a
``BrokerLink`` (a TCP forwarder the test controls; the machine's broker is
shared and is never stopped). Under a steady load the link is cut -- every
connection reset, nothing listening -- for ``OUTAGE`` seconds, then opened
again. While it is cut the API must answer 503 quickly (within the RPC
timeout plus slack) instead of hanging, no load thread may get stuck, and
once the broker is back the acknowledged-post throughput must be back to at
least half its earlier rate within 10 s. Nothing acknowledged may be lost.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from herald.testing.topology import Topology
from tests.faults.harness import (
    BrokerLink,
    Client,
    fault_seconds,
    rate,
    report,
    start_load,
    throughput_recovery,
    verify,
)

pytestmark = [pytest.mark.postgres, pytest.mark.rabbit, pytest.mark.redis]

CALL_TIMEOUT = 2.0
# Python, Tornado and the thread pool on top of the RPC timeout on a busy
# 2-core machine; a hung call would take far longer.
SLACK = 3.0
OUTAGE = 5.0
RECOVERY_BOUND = 10.0


@pytest.mark.parametrize("outage", ["reset", "silent"])
def test_broker_connections_dropped_then_back(topology: Topology, tmp_path: Path,
                                              outage: str) -> None:
    link = BrokerLink()
    link.open()
    env = {"OS_RPC__CALL_TIMEOUT": str(CALL_TIMEOUT), "OS_DEFAULT__TRANSPORT_URL": link.url}
    topology.distributed(storage_workers=2, apis=1, env=env)
    api = topology.services["api"]
    project, queue = f"faults-{uuid.uuid4().hex[:8]}", "broker"
    client = Client(api.url, project)
    assert client.request("PUT", f"/v2/queues/{queue}").status_code == 201

    load = start_load(api.url, project, queue)
    before = max(4.0, (fault_seconds() - OUTAGE) / 2)
    try:
        time.sleep(before)
        cut_at = time.time()
        link.close() if outage == "reset" else link.go_silent()
        time.sleep(OUTAGE)
        back_at = time.time()
        link.open() if outage == "reset" else link.come_back()
        # Until the throughput is back (or the bound is passed), then a little
        # more load to show it stays back; longer only for a soak.
        soak_until = time.time() + fault_seconds() - before - OUTAGE
        while (time.time() - back_at < RECOVERY_BOUND + 1
               and throughput_recovery(load.ledger.ack_times(), back_at,
                                       rate(load.ledger.ack_times(), load.started + 1,
                                            cut_at)) is None):
            time.sleep(0.5)
        time.sleep(max(2.0, soak_until - time.time()))
    finally:
        load.stop()

    ledger = load.ledger
    acks = ledger.ack_times()
    baseline = rate(acks, load.started + 1, cut_at)
    recovery = throughput_recovery(acks, back_at, baseline)
    verdict = verify(ledger, client, queue)
    figures = report(f"broker connections dropped ({outage})", tmp_path, ledger, verdict,
                     outage_s=OUTAGE, baseline_acks_per_s=round(baseline, 1),
                     acks_during_outage=sum(1 for t in acks if cut_at + 1 < t < back_at),
                     recovery_s=None if recovery is None else round(recovery, 2))
    verdict.assert_ok()
    statuses = ledger.statuses
    assert sum(c.get("503", 0) for c in statuses.values()) > 0, "the outage was not noticed"
    for operation, counter in statuses.items():
        assert set(counter) <= {"201", "204", "503"}, (operation, counter)
    slowest = max(max(v) for v in ledger.latencies.values())
    assert slowest < CALL_TIMEOUT + SLACK, f"an answer took {slowest:.1f} s: a hang"
    assert recovery is not None and recovery <= RECOVERY_BOUND, (
        f"throughput not back to half of {baseline:.1f}/s within {RECOVERY_BOUND:.0f} s "
        f"of the broker's return: {figures['recovery_s']}")
    assert api.running()
