"""End to end: a dead-letter redrive whose storage worker is SIGKILLed mid-way.

Two storage workers on PostgreSQL, RabbitMQ and Redis. A redrive of 60
dead letters at 10 a second starts; once some have moved, the worker running
it (its member id names its pid) is SIGKILLed: no cleanup, its tooz
membership left to expire. The other worker adopts the task once its
heartbeat is stale (``[storage] redrive_stale_after`` = 2 s here) and
finishes it. The database then holds every message exactly once, all back
in their source queue, none left in the dead-letter queue.
"""

from __future__ import annotations

import signal
import uuid

import pytest
import requests
import sqlalchemy as sa

from herald.testing.polling import wait_until
from herald.testing.topology import Topology

pytestmark = [pytest.mark.postgres, pytest.mark.rabbit, pytest.mark.redis]

COUNT = 60


def test_a_redrive_resumes_on_another_worker_when_its_worker_is_killed(
        topology: Topology, postgres_url: str) -> None:
    services = topology.distributed(storage_workers=2, apis=1,
                                    env={"OS_STORAGE__REDRIVE_STALE_AFTER": "2"})
    workers, api = services[:2], topology.services["api"]
    project = f"redrive-{uuid.uuid4().hex[:8]}"
    session = requests.Session()
    session.headers.update({"Client-ID": str(uuid.uuid4()), "X-Project-ID": project,
                            "Content-Type": "application/json"})
    url = f"{api.url}/v2/queues"
    assert session.put(f"{url}/jobs", json={"_max_claim_count": 1,
                                            "_dead_letter_queue": "jobs-dlq"}).ok
    for start in range(0, COUNT, 10):
        assert session.post(f"{url}/jobs/messages", json={"messages": [
            {"body": start + i} for i in range(10)]}).status_code == 201
    claims = [session.post(f"{url}/jobs/claims?limit=20", json={"ttl": 60})
              for _ in range(COUNT // 20)]
    for claim in claims:
        assert session.delete(api.url + claim.headers["Location"]).status_code == 204
    # Every message was claimed once: these claims dead-letter them.
    for _ in range(COUNT // 20):
        assert session.post(f"{url}/jobs/claims?limit=20", json={"ttl": 60}).status_code == 204

    started = session.post(f"{url}/jobs-dlq/redrive", json={"max_per_second": 10})
    assert started.status_code == 202, started.text
    href = api.url + started.json()["href"]
    assert started.json()["total"] == COUNT
    wait_until(lambda: session.get(href).json()["moved"] >= 10, timeout=30)

    engine = sa.create_engine(postgres_url)
    try:
        def owner() -> str | None:
            with engine.connect() as conn:
                return conn.execute(sa.text("SELECT owner FROM redrive_tasks WHERE project = "
                                            ":p"), {"p": project}).scalar_one()

        first = owner()
        assert first is not None
        victim = next(w for w in workers if f".{w.pid}." in first)
        victim.send(signal.SIGKILL)
        assert victim.wait(10) == -signal.SIGKILL
        moved_at_kill = session.get(href).json()["moved"]
        assert moved_at_kill < COUNT, "the task ended before the kill: nothing was proved"

        wait_until(lambda: session.get(href).json()["status"] == "done", timeout=60)
        assert session.get(href).json()["moved"] == COUNT
        assert owner() not in (None, first)
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT id, queue FROM messages WHERE project = :p"),
                                {"p": project}).all()
    finally:
        engine.dispose()
    assert len(rows) == len({row.id for row in rows}) == COUNT
    assert {row.queue for row in rows} == {"jobs"}
