"""Scenario: a storage worker SIGKILLed every few seconds and restarted.

Two workers behind one API under a steady load (2 producers, 2 consumers
claiming and deleting). Every ``KILL_EVERY`` seconds one worker, in turn,
is SIGKILLed (no cleanup, no group leave, calls in flight lost) and started
again. The edge re-sends the calls the killed worker had (issue 26,
``test_invisible_faults.py``); with two workers killed faster than one
restarts, both are sometimes gone at once, and only calls made then may
fail, with 503 after the RPC timeout. No acknowledged post may be lost, no
message may be held by two consumers at once.
"""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

import pytest

from herald.testing.topology import Topology
from tests.faults.harness import (
    Client,
    fault_seconds,
    report,
    start_load,
    verify,
)

pytestmark = [pytest.mark.postgres, pytest.mark.rabbit, pytest.mark.redis]

KILL_EVERY = 2.5


def test_storage_workers_killed_and_restarted(topology: Topology, tmp_path: Path) -> None:
    # A short RPC timeout: a call stranded on a killed worker fails fast.
    env = {"OS_RPC__CALL_TIMEOUT": "3"}
    workers = topology.distributed(storage_workers=2, apis=1, env={**env})[:2]
    api = topology.services["api"]
    env["OS_STORAGE__MIGRATE_ON_START"] = "false"
    project, queue = f"faults-{uuid.uuid4().hex[:8]}", "kills"
    client = Client(api.url, project)
    assert client.request("PUT", f"/v2/queues/{queue}").status_code == 201

    load = start_load(api.url, project, queue)
    kills = 0
    deadline = time.monotonic() + fault_seconds()
    try:
        time.sleep(KILL_EVERY)
        while time.monotonic() < deadline:
            victim = workers[kills % 2]
            victim.send(signal.SIGKILL)
            assert victim.wait(10) == -signal.SIGKILL
            kills += 1
            # Started again at once: its start-up (~2 s) is part of the outage.
            workers[kills % 2 - 1] = topology.storage(victim.name, env, wait=False)
            time.sleep(KILL_EVERY)
    finally:
        load.stop()
    for worker in workers:
        worker.wait_for_log("RPC server listening on topic")

    verdict = verify(load.ledger, client, queue)
    statuses = load.ledger.statuses
    report("storage worker SIGKILL + restart", tmp_path, load.ledger, verdict,
           kills=kills, kill_every_s=KILL_EVERY, duration_s=fault_seconds())
    verdict.assert_ok()
    assert kills >= 3
    # Failures are 503s of stranded calls, never 500s or hangs.
    for operation, counter in statuses.items():
        assert set(counter) <= {"201", "204", "503"}, (operation, counter)
    assert not load.ledger.slow, load.ledger.slow
    # A floor, not a benchmark: the machine is shared and its speed varies.
    assert verdict.acknowledged >= 20 and verdict.consumed >= 10
    assert api.running()
