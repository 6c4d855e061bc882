"""Scenario: PostgreSQL backends terminated repeatedly (``pg_terminate_backend``).

Every ``TERMINATE_EVERY`` s, every session of the test's own database (and
only of it: the server is shared) is terminated while the load runs --
in the middle of transactions, of claims' ``SELECT ... FOR UPDATE``, of
commits. No acknowledged post may be lost (a 201 means committed), no
message may get two holders, the failures must be 503s (never 500s or
hangs), and no session may be left ``idle in transaction`` holding locks:
``pg_stat_activity`` is sampled during the run and checked at the end.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest

from herald.testing.topology import Backends, Topology
from tests.faults.harness import (
    Client,
    fault_seconds,
    idle_in_transaction,
    report,
    start_load,
    terminate_backends,
    verify,
    wait_until,
)

pytestmark = [pytest.mark.postgres, pytest.mark.rabbit, pytest.mark.redis]

TERMINATE_EVERY = 1.0
# A transaction idle this long while the service is busy is one nobody will finish.
IDLE_BOUND = 3.0


def test_postgres_backends_terminated_repeatedly(topology: Topology, backends: Backends,
                                                 tmp_path: Path) -> None:
    env = {"OS_RPC__CALL_TIMEOUT": "5"}
    topology.distributed(storage_workers=2, apis=1, env=env)
    api = topology.services["api"]
    project, queue = f"faults-{uuid.uuid4().hex[:8]}", "pg"
    client = Client(api.url, project)
    assert client.request("PUT", f"/v2/queues/{queue}").status_code == 201

    idle_seen: list[dict] = []
    terminated = rounds = 0
    stop = threading.Event()

    def sample_idle() -> None:
        while not stop.wait(0.5):
            idle_seen.extend(idle_in_transaction(backends.database_url, older_than=IDLE_BOUND))

    sampler = threading.Thread(target=sample_idle, daemon=True)
    load = start_load(api.url, project, queue)
    sampler.start()
    deadline = time.monotonic() + fault_seconds()
    try:
        time.sleep(2.0)
        while time.monotonic() < deadline - 3.0:  # the last seconds show recovery
            terminated += terminate_backends(backends.database_url)
            rounds += 1
            time.sleep(TERMINATE_EVERY)
        time.sleep(max(0.0, deadline - time.monotonic()))
    finally:
        stop.set()
        load.stop()
        sampler.join(10)

    ledger = load.ledger
    verdict = verify(ledger, client, queue)
    # Once the load is over, nothing may stay inside a transaction.
    wait_until(lambda: not idle_in_transaction(backends.database_url), 10,
               "no session idle in transaction")
    acks_after = sum(1 for t in ledger.ack_times() if t > time.time() - 4.0)
    report("PostgreSQL backends terminated", tmp_path, ledger, verdict,
           terminate_rounds=rounds, sessions_terminated=terminated,
           idle_in_transaction_over_3s=len(idle_seen), acks_last_seconds=acks_after)
    verdict.assert_ok()
    assert rounds >= 5 and terminated >= rounds, (rounds, terminated)
    assert not idle_seen, f"sessions idle in transaction: {idle_seen[:5]}"
    for operation, counter in ledger.statuses.items():
        assert set(counter) <= {"201", "204", "503"}, (operation, counter)
    assert not ledger.slow, ledger.slow[:5]
    assert ledger.count("post", "201") > 0
